package daemon

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/tailgate-sre/tailgate/internal/config"
	"github.com/tailgate-sre/tailgate/internal/units"
)

// guard bounds how long a test waits for the server to act on its own
// timeout, so that a missing timeout fails the test instead of hanging it.
// It is far above the timeouts configured; nothing asserts how soon.
const guard = 30 * time.Second

func apiTimeoutConfig(t *testing.T, read, idle time.Duration) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Server.API, cfg.Ingest.OTLPGRPC, cfg.Ingest.OTLPHTTP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Storage.Path = t.TempDir()
	cfg.Server.ReadTimeout, cfg.Server.IdleTimeout = units.Duration(read), units.Duration(idle)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestAPIReadTimeout: a client that sends its headers and then trickles
// (here: withholds) its body loses the connection after
// server.read_timeout, instead of holding it.
func TestAPIReadTimeout(t *testing.T) {
	d := startDaemon(t, apiTimeoutConfig(t, 200*time.Millisecond, time.Hour))
	defer stopDaemon(t, d)
	conn, err := net.Dial("tcp", d.APIAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /api/v1/gate/check HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(guard)); err != nil {
		t.Fatal(err)
	}
	// The server gives up reading the body: it answers the truncated
	// request with an error, or closes the connection.
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server still waits for the body: no read timeout")
	}
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("truncated request answered %d", resp.StatusCode)
		}
	}
}

// TestAPIIdleTimeout: a keep-alive connection left idle after its request
// is closed by the server after server.idle_timeout (the read timeout is
// an hour, so it is the idle timeout that acts).
func TestAPIIdleTimeout(t *testing.T) {
	d := startDaemon(t, apiTimeoutConfig(t, time.Hour, 200*time.Millisecond))
	defer stopDaemon(t, d)
	conn, err := net.Dial("tcp", d.APIAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(guard)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("healthz: %d, close %v", resp.StatusCode, resp.Close)
	}
	// Idle now: the next read ends when the server closes the connection.
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection: read %v, want EOF (closed by the server)", err)
	}
}
