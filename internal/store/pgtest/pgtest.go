// Package pgtest starts a private PostgreSQL server for tests: initdb in a
// temporary directory, the server on a free port of 127.0.0.1, one fresh
// database per test, everything removed afterwards. Under root the server
// runs as the postgres system user, since PostgreSQL refuses root.
//
// A package's tests share one server:
//
//	var pg pgtest.Server
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }
//
//	func TestX(t *testing.T) { dsn := pg.Database(t) ... }
//
// Without PostgreSQL's binaries the tests that ask for a database skip,
// unless TAILGATE_REQUIRE_POSTGRES=1 (as CI sets) makes that a failure.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// RequireEnv names the environment variable that turns a missing
// PostgreSQL into a failure.
const RequireEnv = "TAILGATE_REQUIRE_POSTGRES"

// Server is a running private server, or the reason there is none.
type Server struct {
	dir     string
	port    int
	cmd     *exec.Cmd
	exited  chan struct{}
	skip    string // why there is no server
	next    atomic.Int64
	running bool
	main    bool // Main runs the tests
	once    sync.Once
	err     error // the start's failure
}

// Main runs the tests and then stops the server if a test started it:
// the server starts at the first Database call, so a run whose tests need
// no database (-short, -run) pays nothing. It returns the exit code for
// os.Exit.
func Main(m *testing.M, s *Server) int {
	s.main = true
	defer s.stop()
	return m.Run()
}

var errNotInstalled = errors.New("PostgreSQL is not installed (apt-get install postgresql; " + RequireEnv + "=1 makes this a failure)")

// bin finds a PostgreSQL program: on PATH, or in Debian's versioned
// directory.
func bin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	ms, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(ms) == 0 {
		return "", errNotInstalled
	}
	sort.Strings(ms)
	return ms[len(ms)-1], nil
}

// credential returns the postgres user's credential when running as root.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres system user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (s *Server) start() error {
	initdb, err := bin("initdb")
	if err != nil {
		return err
	}
	postgres, err := bin("postgres")
	if err != nil {
		return err
	}
	cred, err := credential()
	if err != nil {
		return err
	}
	if s.dir, err = os.MkdirTemp("", "tailgate-pgtest-"); err != nil {
		return err
	}
	if cred != nil {
		if err := os.Chown(s.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	data := filepath.Join(s.dir, "data")
	cmd := exec.Command(initdb, "-D", data, "-U", "tailgate", "--auth=trust", "-E", "UTF8", "--no-instructions", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	// fsync off: the tests kill tailgate, never the database server.
	s.cmd = exec.Command(postgres, "-D", data, "-p", strconv.Itoa(s.port), "-k", s.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=300")
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	logf, err := os.Create(filepath.Join(s.dir, "server.log"))
	if err != nil {
		return err
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); logf.Close(); close(s.exited) }() //nolint:errcheck // the exit is reported by the readiness check
	// Wait for the server to accept connections: bounded tries, each
	// ending by itself.
	for range 600 {
		select {
		case <-s.exited:
			log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			return fmt.Errorf("postgres exited at start:\n%s", log)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, s.dsn("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			s.running = true
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	return errors.New("postgres did not accept connections within 30s")
}

func (s *Server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		// SIGINT is PostgreSQL's fast shutdown.
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
		}
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

func (s *Server) dsn(db string) string {
	return fmt.Sprintf("postgres://tailgate@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Database creates a fresh database for t and returns its connection
// string; it skips t when there is no server. The database is dropped at
// the end of t.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	if !s.main {
		t.Fatal("pgtest: call pgtest.Main from TestMain")
	}
	s.once.Do(func() {
		s.err = s.start()
		if errors.Is(s.err, errNotInstalled) && os.Getenv(RequireEnv) != "1" {
			s.skip, s.err = s.err.Error(), nil
		}
	})
	if s.err != nil {
		t.Fatalf("pgtest: %v", s.err)
	}
	if !s.running {
		t.Skip(s.skip)
	}
	name := fmt.Sprintf("t%d_%d", os.Getpid(), s.next.Add(1))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.dsn("postgres"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, s.dsn("postgres"))
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return s.dsn(name)
}
