package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Exit codes, the one policy of every command. Scripts and CI pipelines rely
// on them (gate check above all), so they never change meaning.
const (
	exitOK     = 0 // done; gate check: allow (or canary with --accept-canary)
	exitFail   = 1 // the command ran and its answer is "no": gate check denies, slo validate finds errors, cardinality --fail-on-flagged flags a key, a demo run fails, audit verify finds the chain broken, the daemon stops after a failure
	exitUsage  = 2 // no answer: bad usage (unknown flag, missing argument), unreadable config, unreachable server, an error answer from the server
	exitCanary = 3 // gate check: allowed only as a canary; canary check: inconclusive
)

// exitCodesHelp documents the policy above for users; the root help prints it.
const exitCodesHelp = `Exit codes (every command):
  0  done; gate check: allow (or canary with --accept-canary)
  1  the command ran and its answer is "no": gate check denies, canary check
     fails, slo validate
     finds errors, cardinality --fail-on-flagged flags a key, a demo run fails,
     audit verify finds the audit log's hash chain broken
  2  no answer: bad usage, unreadable config, unreachable server, or an
     error answer from the server
  3  gate check: allowed only as a canary; canary check: inconclusive
`

// usageError is a mistake in the command line: it exits 2 with a hint to
// the command's --help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitCode ends a command with a code and nothing more to print: the
// command has written its answer already (a denied gate check).
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// failure is an error of a command that did run: it exits 1.
type failure struct{ err error }

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// commonFlags selects the flags a command shares with others.
type commonFlags uint8

const (
	withClient commonFlags = 1 << iota // --server, --token-file, --timeout
	withOutput                         // --output text|json
)

// command is one tailgate command: a group of subcommands or a leaf with
// flags, positional arguments and a run function. The tree is built anew
// for every run, so parsing keeps no state between invocations.
type command struct {
	name     string
	aliases  []string
	summary  string // one line in the parent's list
	synopsis string // what follows the command's path on the usage line
	help     string // paragraphs after the usage line
	// args names the positional arguments in errors ("ID"); minArgs and
	// maxArgs bound their number (maxArgs < 0: any number).
	args             string
	minArgs, maxArgs int
	common           commonFlags
	flags            func(fs *flag.FlagSet) // registers the command's own flags
	run              func(ctx context.Context, inv *invocation) error
	subs             []*command

	path string // "tailgate gate check", set by dispatch
	fs   *flag.FlagSet
}

// invocation is what a run function gets: its streams, its arguments and
// the parsed common flags.
type invocation struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	args           []string
	fs             *flag.FlagSet
	output         string
	client         func() (*apiClient, error)
}

// flagSet reports whether the flag name was given on the command line.
func (inv *invocation) flagSet(name string) bool {
	set := false
	inv.fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// call sends one API request with the client flags and decodes the answer
// into out (see apiClient.do).
func (inv *invocation) call(ctx context.Context, method, path string, in, out any) error {
	c, err := inv.client()
	if err != nil {
		return err
	}
	return c.do(ctx, method, path, in, out)
}

// json reports whether --output json was asked for.
func (inv *invocation) json() bool { return inv.output == "json" }

// execute runs the command line args (without the program name) against
// the tree under root and returns the exit code, printing any error once.
func execute(ctx context.Context, root *command, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root.path = root.name
	c, rest := root, args
	for len(c.subs) > 0 {
		if len(rest) == 0 {
			fmt.Fprintf(stderr, "%s: missing command\n\n", c.path)
			c.writeHelp(stderr)
			return exitUsage
		}
		name := rest[0]
		switch {
		case isHelpArg(name) || name == "help":
			if name == "help" && len(rest) > 1 {
				// "tailgate help gate check" is "tailgate gate check --help".
				return execute(ctx, root, append(append([]string{}, rest[1:]...), "--help"), stdin, stdout, stderr)
			}
			c.writeHelp(stdout)
			return exitOK
		}
		sub := c.sub(name)
		switch {
		case sub == nil && strings.HasPrefix(name, "-"):
			return printError(stderr, c, usagef("unknown flag %s", name))
		case sub == nil:
			return printError(stderr, c, usagef("unknown command %q", name))
		}
		sub.path = c.path + " " + sub.name
		c, rest = sub, rest[1:]
	}
	inv, err := c.parse(rest, stdin, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		c.writeHelp(stdout)
		return exitOK
	}
	if err == nil {
		err = c.run(ctx, inv)
	}
	return printError(stderr, c, err)
}

func isHelpArg(s string) bool { return s == "-h" || s == "--help" || s == "-help" }

func (c *command) sub(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
		for _, a := range s.aliases {
			if a == name {
				return s
			}
		}
	}
	return nil
}

// parse registers and parses the flags, which may come before, between or
// after the positional arguments ("revoke ID --server URL").
func (c *command) parse(args []string, stdin io.Reader, stdout, stderr io.Writer) (*invocation, error) {
	fs := flag.NewFlagSet(c.path, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed once, by printError
	fs.Usage = func() {}
	c.fs = fs
	inv := &invocation{stdin: stdin, stdout: stdout, stderr: stderr, fs: fs}
	var output *string
	if c.common&withOutput != 0 {
		output = fs.String("output", "text", "output format: text or json")
	}
	if c.common&withClient != 0 {
		inv.client = clientFlags(fs)
	}
	if c.flags != nil {
		c.flags(fs)
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{msg: err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) < c.minArgs:
		return nil, usagef("missing argument %s", c.args)
	case c.maxArgs >= 0 && len(pos) > c.maxArgs:
		return nil, usagef("unexpected argument %q", pos[c.maxArgs])
	}
	inv.args = pos
	if output != nil {
		if *output != "text" && *output != "json" {
			return nil, usagef("--output must be text or json, got %q", *output)
		}
		inv.output = *output
	}
	return inv, nil
}

// printError writes err once, prefixed with the command's path, and maps it
// to the exit code policy.
func printError(stderr io.Writer, c *command, err error) int {
	if err == nil {
		return exitOK
	}
	var (
		code exitCode
		ue   *usageError
		f    *failure
	)
	switch {
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%s: %s\nRun '%s --help' for usage.\n", c.path, ue.msg, c.path)
		return exitUsage
	case errors.As(err, &f):
		fmt.Fprintf(stderr, "%s: %v\n", c.path, err)
		return exitFail
	default:
		fmt.Fprintf(stderr, "%s: %v\n", c.path, err)
		return exitUsage
	}
}

// writeHelp prints the usage line, the help text, the subcommands and the
// flags.
func (c *command) writeHelp(w io.Writer) {
	syn := c.synopsis
	if syn == "" && len(c.subs) > 0 {
		syn = "COMMAND"
	}
	fmt.Fprintf(w, "Usage: %s %s\n", c.path, syn)
	if c.summary != "" {
		fmt.Fprintf(w, "\n%s.\n", upperFirst(c.summary))
	}
	if c.help != "" {
		fmt.Fprintf(w, "\n%s", c.help)
	}
	if len(c.subs) > 0 {
		fmt.Fprintln(w, "\nCommands:")
		width := 0
		for _, s := range c.subs {
			width = max(width, len(s.name))
		}
		for _, s := range c.subs {
			fmt.Fprintf(w, "  %-*s  %s\n", width, s.name, s.summary)
		}
		fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's flags.\n", c.path)
		return
	}
	if c.fs == nil {
		// Help asked for before parsing ("tailgate help gate check" goes
		// through parse, so this is only a safety net).
		return
	}
	hasFlags := false
	c.fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintln(w, "\nFlags:")
		c.fs.SetOutput(w)
		c.fs.PrintDefaults()
		c.fs.SetOutput(io.Discard)
	}
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// envOr returns the environment variable key, or def when it is empty.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// parseTime reads an RFC 3339 flag value.
func parseTime(flagName, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usagef("--%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", flagName, v)
	}
	return t, nil
}
