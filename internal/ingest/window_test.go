package ingest

import (
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestGRPCWindow reads what the OTLP/gRPC receiver announces to a new
// HTTP/2 connection: its SETTINGS_INITIAL_WINDOW_SIZE (the stream window)
// and the WINDOW_UPDATE of stream 0 that raises the connection window from
// HTTP/2's 65,535 bytes. Both must be ingest.grpc_window.
func TestGRPCWindow(t *testing.T) {
	cfg := testConfig()
	cfg.OTLPHTTP = ""
	cfg.GRPCWindow = 4 << 20
	r, _ := startReceiver(t, cfg, &recorder{})
	conn, err := net.Dial("tcp", r.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var stream, connWindow uint32
	var sawSettings bool
	for !sawSettings || connWindow == 0 {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's first frames: %v (settings seen %v, connection window update %d)", err, sawSettings, connWindow)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			sawSettings = true
			stream, _ = f.Value(http2.SettingInitialWindowSize)
			if err := fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				connWindow = 65535 + f.Increment
			}
		}
	}
	if stream != 4<<20 {
		t.Errorf("SETTINGS_INITIAL_WINDOW_SIZE = %d, want %d (grpc_window)", stream, 4<<20)
	}
	if connWindow != 4<<20 {
		t.Errorf("connection window = %d, want %d (grpc_window)", connWindow, 4<<20)
	}
}
