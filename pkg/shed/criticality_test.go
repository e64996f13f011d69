package shed

import (
	"context"
	"testing"
)

func TestCriticalityText(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Criticality
	}{{"critical", Critical}, {"DEFAULT", Default}, {"Sheddable", Sheddable}} {
		got, err := ParseCriticality(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseCriticality(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		b, err := got.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Criticality
		if err := back.UnmarshalText(b); err != nil || back != tt.want {
			t.Errorf("round trip of %q: %v, %v", b, back, err)
		}
	}
	if _, err := ParseCriticality("urgent"); err == nil {
		t.Error("ParseCriticality accepted urgent")
	}
	if _, err := Criticality(5).MarshalText(); err == nil {
		t.Error("MarshalText accepted an invalid criticality")
	}
	var zero Criticality
	if zero != Default {
		t.Errorf("zero value is %s, want default", zero)
	}
}

func TestContext(t *testing.T) {
	if _, ok := FromContext(context.Background()); ok {
		t.Error("empty context carries a criticality")
	}
	c, ok := FromContext(WithCriticality(context.Background(), Sheddable))
	if !ok || c != Sheddable {
		t.Errorf("FromContext = %v, %v; want sheddable, true", c, ok)
	}
}
