package slo

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"

	"github.com/tailgate-sre/tailgate/internal/units"
)

// OpenSLO v1 support. The subset tailgate reads:
//
//   - kind: SLO with spec.service, spec.description, an inline
//     spec.indicator or spec.indicatorRef naming a kind: SLI document of the
//     same load, one spec.timeWindow (rolling: duration in m, h, d or w;
//     calendar: isRolling false with duration 1M or 1w and
//     calendar.timeZone), spec.budgetingMethod (Occurrences, Timeslices,
//     RatioTimeslices) and spec.objectives (target or targetPercent, and
//     timeSliceTarget/timeSliceWindow for the timeslices methods). Several
//     objectives give several SLOs named <name>-<objective displayName or
//     index>.
//   - The indicator's metrics must have metricSource.type: tailgate (SLIs
//     computed from spans). Its spec holds tailgate's SLI keys: kind
//     (availability or latency), threshold, filter, group_by, max_groups,
//     client_errors_bad.
//   - ratioMetric: good (or bad) and total each name the tailgate source;
//     kind and threshold come from good/bad, filters from any (they must
//     agree).
//   - thresholdMetric: a latency SLI whose threshold is the objective's
//     value with op lte (or lt), in milliseconds (metricSource.spec.unit:
//     s for seconds).
//   - alertPolicies are ignored (with a warning): tailgate alerts with its
//     multi-window multi-burn-rate tiers.
//
// Other kinds (Service, DataSource, AlertPolicy, ...) are skipped.

type osloDoc struct {
	file string
	node ast.Node
	name string
	kind string
}

type osloMeta struct {
	Name        string            `yaml:"name"`
	DisplayName string            `yaml:"displayName"`
	Labels      map[string]any    `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type osloHeader struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   osloMeta `yaml:"metadata"`
}

type osloSLODoc struct {
	APIVersion string      `yaml:"apiVersion"`
	Kind       string      `yaml:"kind"`
	Metadata   osloMeta    `yaml:"metadata"`
	Spec       osloSLOSpec `yaml:"spec"`
}

type osloSLOSpec struct {
	Description     string           `yaml:"description"`
	Service         string           `yaml:"service"`
	Indicator       *osloSLI         `yaml:"indicator"`
	IndicatorRef    string           `yaml:"indicatorRef"`
	TimeWindow      []osloTimeWindow `yaml:"timeWindow"`
	BudgetingMethod string           `yaml:"budgetingMethod"`
	Objectives      []osloObjective  `yaml:"objectives"`
	AlertPolicies   []any            `yaml:"alertPolicies"`
}

type osloSLI struct {
	APIVersion string      `yaml:"apiVersion"`
	Kind       string      `yaml:"kind"`
	Metadata   osloMeta    `yaml:"metadata"`
	Spec       osloSLISpec `yaml:"spec"`
}

type osloSLISpec struct {
	Description     string      `yaml:"description"`
	RatioMetric     *osloRatio  `yaml:"ratioMetric"`
	ThresholdMetric *osloMetric `yaml:"thresholdMetric"`
}

type osloRatio struct {
	Counter bool        `yaml:"counter"`
	Good    *osloMetric `yaml:"good"`
	Bad     *osloMetric `yaml:"bad"`
	Total   *osloMetric `yaml:"total"`
	RawType string      `yaml:"rawType"`
	Raw     *osloMetric `yaml:"raw"`
}

type osloMetric struct {
	MetricSource osloSource `yaml:"metricSource"`
}

type osloSource struct {
	MetricSourceRef string         `yaml:"metricSourceRef"`
	Type            string         `yaml:"type"`
	Spec            map[string]any `yaml:"spec"`
}

// tailgateSource is the spec of a metricSource of type tailgate.
type tailgateSource struct {
	Kind            SLIKind           `yaml:"kind"`
	Threshold       units.Duration    `yaml:"threshold"`
	Filter          map[string]string `yaml:"filter"`
	GroupBy         string            `yaml:"group_by"`
	MaxGroups       int               `yaml:"max_groups"`
	ClientErrorsBad bool              `yaml:"client_errors_bad"`
	Unit            string            `yaml:"unit"`
}

type osloTimeWindow struct {
	Duration  string        `yaml:"duration"`
	IsRolling bool          `yaml:"isRolling"`
	Calendar  *osloCalendar `yaml:"calendar"`
}

type osloCalendar struct {
	StartTime string `yaml:"startTime"`
	TimeZone  string `yaml:"timeZone"`
}

type osloObjective struct {
	DisplayName     string   `yaml:"displayName"`
	Name            string   `yaml:"name"`
	Op              string   `yaml:"op"`
	Value           *float64 `yaml:"value"`
	Target          *float64 `yaml:"target"`
	TargetPercent   *float64 `yaml:"targetPercent"`
	TimeSliceTarget *float64 `yaml:"timeSliceTarget"`
	// TimeSliceWindow is a duration ("5m") or, as the spec has it, a
	// number of minutes.
	TimeSliceWindow any      `yaml:"timeSliceWindow"`
	Indicator       *osloSLI `yaml:"indicator"`
	IndicatorRef    string   `yaml:"indicatorRef"`
	CompositeWeight *float64 `yaml:"compositeWeight"`
}

// openSLODoc sorts an OpenSLO document by kind; SLOs are converted once
// every file is read, so that indicatorRef can name an SLI of any file.
func (l *loader) openSLODoc(file string, body ast.Node) {
	var h osloHeader
	if err := yaml.NodeToValue(body, &h); err != nil {
		l.errs = append(l.errs, yamlError(file, err))
		return
	}
	if h.APIVersion != "openslo/v1" {
		l.errs = append(l.errs, fmt.Errorf("%s: apiVersion %q is not supported (want openslo/v1)", lineOf(file, mapValue(body, "apiVersion")), h.APIVersion))
		return
	}
	d := &osloDoc{file: file, node: body, name: h.Metadata.Name, kind: h.Kind}
	switch h.Kind {
	case "SLO":
		l.slos = append(l.slos, d)
	case "SLI":
		if prev, dup := l.slis[d.name]; dup {
			l.errs = append(l.errs, fmt.Errorf("%s: SLI %q is already defined at %s", lineOf(file, body), d.name, lineOf(prev.file, prev.node)))
			return
		}
		l.slis[d.name] = d
	}
}

func (l *loader) resolveOpenSLO() {
	for _, d := range l.slos {
		l.convertSLO(d)
	}
}

func (l *loader) convertSLO(d *osloDoc) {
	var doc osloSLODoc
	if err := yaml.NodeToValue(d.node, &doc, yaml.Strict()); err != nil {
		l.errs = append(l.errs, yamlError(d.file, err))
		return
	}
	at := func(path string) string {
		ld := loaded{file: d.file, node: d.node}
		return ld.locate(path)
	}
	fail := func(path, format string, args ...any) {
		l.errs = append(l.errs, fmt.Errorf("%s: SLO %q: %s: %s", at(path), doc.Metadata.Name, path, fmt.Sprintf(format, args...)))
	}
	sp := &doc.Spec
	if len(sp.AlertPolicies) > 0 {
		l.warns = append(l.warns, Warning{Source: at("spec.alertPolicies"), SLO: doc.Metadata.Name,
			Msg: "alertPolicies are ignored: tailgate alerts with the multi-window multi-burn-rate tiers (customise them with the own format's alerting key)"})
	}
	// The indicator: inline, or a reference to an SLI document.
	ind, indPath := sp.Indicator, "spec.indicator"
	if ind == nil && sp.IndicatorRef != "" {
		ref := l.slis[sp.IndicatorRef]
		if ref == nil {
			fail("spec.indicatorRef", "no kind: SLI document named %q", sp.IndicatorRef)
			return
		}
		var sli osloSLI
		if err := yaml.NodeToValue(ref.node, &sli, yaml.Strict()); err != nil {
			l.errs = append(l.errs, yamlError(ref.file, err))
			return
		}
		ind = &sli
		indPath = "spec.indicatorRef"
	}
	if ind == nil {
		fail("spec", "an indicator or indicatorRef is required")
		return
	}
	base := Spec{Name: doc.Metadata.Name, Service: sp.Service, Description: sp.Description}
	if base.Description == "" {
		base.Description = doc.Metadata.DisplayName
	}
	thresholdMetric, unit := false, ""
	switch {
	case ind.Spec.RatioMetric != nil:
		rm := ind.Spec.RatioMetric
		if rm.Raw != nil || rm.RawType != "" {
			fail(indPath+".spec.ratioMetric", "raw ratio metrics are not supported; use good (or bad) and total")
			return
		}
		gb := rm.Good
		if gb == nil {
			gb = rm.Bad
		}
		if gb == nil || rm.Total == nil {
			fail(indPath+".spec.ratioMetric", "good (or bad) and total are required")
			return
		}
		src, err := mergeSources(gb, rm.Total)
		if err != nil {
			fail(indPath+".spec.ratioMetric", "%v", err)
			return
		}
		base.SLI = SLISpec{Kind: src.Kind, Threshold: src.Threshold, Filter: src.Filter, GroupBy: src.GroupBy, MaxGroups: src.MaxGroups, ClientErrorsBad: src.ClientErrorsBad}
	case ind.Spec.ThresholdMetric != nil:
		src, err := tailgateSpec(ind.Spec.ThresholdMetric)
		if err != nil {
			fail(indPath+".spec.thresholdMetric", "%v", err)
			return
		}
		if src.Kind != 0 && src.Kind != Latency {
			fail(indPath+".spec.thresholdMetric", "a threshold metric is a latency SLI, not %s", src.Kind)
			return
		}
		base.SLI = SLISpec{Kind: Latency, Filter: src.Filter, GroupBy: src.GroupBy, MaxGroups: src.MaxGroups}
		if src.Unit != "" && src.Unit != "ms" && src.Unit != "s" {
			fail(indPath+".spec.thresholdMetric", "unit must be ms or s, got %q", src.Unit)
			return
		}
		thresholdMetric, unit = true, src.Unit
	default:
		fail(indPath+".spec", "a ratioMetric or thresholdMetric is required")
		return
	}
	for k, v := range doc.Metadata.Labels {
		if s, ok := v.(string); ok {
			if base.Labels == nil {
				base.Labels = map[string]string{}
			}
			base.Labels[k] = s
		}
	}
	// The time window.
	if len(sp.TimeWindow) != 1 {
		fail("spec.timeWindow", "exactly one time window is required, got %d", len(sp.TimeWindow))
		return
	}
	tw := sp.TimeWindow[0]
	if tw.IsRolling {
		if tw.Calendar != nil {
			fail("spec.timeWindow[0].calendar", "a rolling window has no calendar")
			return
		}
		w, err := units.ParseDuration(tw.Duration)
		if err != nil {
			fail("spec.timeWindow[0].duration", "%v (rolling windows use m, h, d or w)", err)
			return
		}
		base.Window = units.Duration(w)
	} else {
		switch tw.Duration {
		case "1M":
			base.Calendar = Month
		case "1w", "7d":
			base.Calendar = Week
		default:
			fail("spec.timeWindow[0].duration", "calendar windows support 1M and 1w, got %q", tw.Duration)
			return
		}
		if tw.Calendar != nil {
			base.TimeZone = tw.Calendar.TimeZone
			base.CalendarStart = tw.Calendar.StartTime
		}
	}
	if err := base.Budgeting.UnmarshalText([]byte(sp.BudgetingMethod)); err != nil {
		fail("spec.budgetingMethod", "%v", err)
		return
	}
	if len(sp.Objectives) == 0 {
		fail("spec.objectives", "at least one objective is required")
		return
	}
	for j, o := range sp.Objectives {
		p := fmt.Sprintf("spec.objectives[%d]", j)
		s := base
		if len(sp.Objectives) > 1 {
			suffix := o.Name
			if suffix == "" {
				suffix = o.DisplayName
			}
			suffix = slug(suffix)
			if suffix == "" {
				suffix = strconv.Itoa(j)
			}
			s.Name = base.Name + "-" + suffix
		}
		switch {
		case o.Target != nil && o.TargetPercent != nil:
			fail(p, "set target or targetPercent, not both")
			continue
		case o.Target != nil:
			s.Objective = roundPercent(*o.Target * 100)
		case o.TargetPercent != nil:
			s.Objective = roundPercent(*o.TargetPercent)
		default:
			fail(p, "target (0..1) or targetPercent is required")
			continue
		}
		if o.Indicator != nil || o.IndicatorRef != "" || o.CompositeWeight != nil {
			fail(p, "per-objective indicators and composite weights are not supported")
			continue
		}
		if thresholdMetric {
			if o.Value == nil {
				fail(p+".value", "required with a thresholdMetric (the latency threshold)")
				continue
			}
			mult := float64(time.Millisecond)
			if unit == "s" {
				mult = float64(time.Second)
			}
			th := time.Duration(math.Round(*o.Value * mult))
			switch o.Op {
			case "lte":
			case "lt":
				th-- // duration < v ⇔ duration ≤ v-1ns
			default:
				fail(p+".op", "a latency objective needs op lte or lt, got %q", o.Op)
				continue
			}
			s.SLI.Threshold = units.Duration(th)
		} else if o.Op != "" || o.Value != nil {
			// The OpenSLO repository's own ratio examples carry them.
			l.warns = append(l.warns, Warning{Source: at(p), SLO: doc.Metadata.Name,
				Msg: "op and value apply to a thresholdMetric only; ignored on this ratio objective"})
		}
		if s.Budgeting != Occurrences {
			if o.TimeSliceTarget != nil {
				s.TimeSlice.Target = roundPercent(*o.TimeSliceTarget * 100)
			}
			if o.TimeSliceWindow != nil {
				w, err := sliceWindow(o.TimeSliceWindow)
				if err != nil {
					fail(p+".timeSliceWindow", "%v", err)
					continue
				}
				s.TimeSlice.Window = units.Duration(w)
			}
		} else if o.TimeSliceTarget != nil || o.TimeSliceWindow != nil {
			fail(p, "timeSliceTarget and timeSliceWindow only apply to the Timeslices and RatioTimeslices budgeting methods")
			continue
		}
		s.Source = at(p)
		obj := j
		l.specs = append(l.specs, loaded{spec: s, file: d.file, node: d.node, paths: func(own string) string {
			return openSLOPath(own, obj, indPath)
		}})
	}
}

// openSLOPath maps an own-format field path to the OpenSLO document's.
func openSLOPath(own string, obj int, indPath string) string {
	o := fmt.Sprintf("spec.objectives[%d]", obj)
	switch {
	case own == "name":
		return "metadata.name"
	case own == "service":
		return "spec.service"
	case own == "objective":
		return o
	case own == "window", own == "calendar":
		return "spec.timeWindow[0].duration"
	case own == "time_zone":
		return "spec.timeWindow[0].calendar.timeZone"
	case own == "budgeting":
		return "spec.budgetingMethod"
	case strings.HasPrefix(own, "time_slice"):
		return o
	case own == "sli.threshold":
		return o + ".value"
	case strings.HasPrefix(own, "sli"):
		return indPath
	}
	return "spec"
}

func roundPercent(p float64) float64 { return math.Round(p*1e9) / 1e9 }

func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// tailgateSpec decodes a metric's tailgate source spec strictly.
func tailgateSpec(m *osloMetric) (tailgateSource, error) {
	var ts tailgateSource
	if m.MetricSource.Type != "tailgate" {
		return ts, fmt.Errorf("metricSource type %q is not supported: tailgate computes SLIs from spans (type: tailgate)", m.MetricSource.Type)
	}
	if m.MetricSource.MetricSourceRef != "" {
		return ts, fmt.Errorf("metricSourceRef is not supported; give the tailgate source inline")
	}
	if len(m.MetricSource.Spec) == 0 {
		return ts, nil
	}
	b, err := yaml.Marshal(m.MetricSource.Spec)
	if err != nil {
		return ts, fmt.Errorf("metricSource spec: %w", err)
	}
	if err := yaml.UnmarshalWithOptions(b, &ts, yaml.Strict()); err != nil {
		msg := yamlPosRE.ReplaceAllString(err.Error(), "")
		first, _, _ := strings.Cut(msg, "\n")
		return ts, fmt.Errorf("metricSource spec: %s", first)
	}
	return ts, nil
}

// mergeSources combines the good (or bad) and total sources of a ratio
// metric: the SLI kind from good/bad, filters from both.
func mergeSources(gb, total *osloMetric) (tailgateSource, error) {
	a, err := tailgateSpec(gb)
	if err != nil {
		return a, err
	}
	t, err := tailgateSpec(total)
	if err != nil {
		return a, err
	}
	if t.Kind != 0 && a.Kind != 0 && t.Kind != a.Kind {
		return a, fmt.Errorf("good/bad and total name different SLI kinds (%s, %s)", a.Kind, t.Kind)
	}
	if a.Kind == 0 {
		a.Kind = t.Kind
	}
	if a.Threshold == 0 {
		a.Threshold = t.Threshold
	}
	for k, v := range t.Filter {
		if x, ok := a.Filter[k]; ok && x != v {
			return a, fmt.Errorf("filter %s is %q in good/bad and %q in total", k, x, v)
		}
		if a.Filter == nil {
			a.Filter = map[string]string{}
		}
		a.Filter[k] = v
	}
	if a.GroupBy == "" {
		a.GroupBy, a.MaxGroups = t.GroupBy, t.MaxGroups
	}
	a.ClientErrorsBad = a.ClientErrorsBad || t.ClientErrorsBad
	return a, nil
}

// sliceWindow reads timeSliceWindow: a number of minutes (the OpenSLO
// spec's form) or a duration such as 5m.
func sliceWindow(v any) (time.Duration, error) {
	minutes := func(f float64) (time.Duration, error) {
		if f <= 0 || f != math.Trunc(f) {
			return 0, fmt.Errorf("a number is whole minutes, got %v", f)
		}
		return time.Duration(f) * time.Minute, nil
	}
	switch x := v.(type) {
	case uint64:
		return minutes(float64(x))
	case int64:
		return minutes(float64(x))
	case int:
		return minutes(float64(x))
	case float64:
		return minutes(x)
	case string:
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			return minutes(f)
		}
		return units.ParseDuration(x)
	}
	return 0, fmt.Errorf("want minutes (5) or a duration (5m), got %v", v)
}
