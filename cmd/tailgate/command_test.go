package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testTree is a small command tree that records what its leaf received.
func testTree(got *[]string, gotName *string) *command {
	var name *string
	return &command{
		name: "tg",
		subs: []*command{{
			name:    "grp",
			summary: "a group",
			subs: []*command{{
				name:     "leaf",
				aliases:  []string{"lf"},
				summary:  "a leaf",
				synopsis: "A [B] [flags]",
				args:     "A",
				minArgs:  1,
				maxArgs:  2,
				common:   withOutput,
				flags:    func(fs *flag.FlagSet) { name = fs.String("name", "", "a name") },
				run: func(_ context.Context, inv *invocation) error {
					*got, *gotName = inv.args, *name
					switch inv.args[0] {
					case "deny":
						return exitCode(exitFail)
					case "broken":
						return &failure{err: errors.New("it broke")}
					case "unreachable":
						return errors.New("reach it: refused")
					}
					return nil
				},
			}},
		}},
	}
}

func TestExecute(t *testing.T) {
	tests := []struct {
		name           string
		args           []string
		code           int
		pos            []string
		flag           string
		stdout, stderr string // prefixes; "" wants the stream empty
	}{
		{name: "flags after the arguments", args: []string{"grp", "leaf", "x", "y", "--name", "n"}, pos: []string{"x", "y"}, flag: "n"},
		{name: "flags between the arguments", args: []string{"grp", "lf", "x", "-name=n", "y"}, pos: []string{"x", "y"}, flag: "n"},
		{name: "after -- everything is an argument", args: []string{"grp", "leaf", "x", "--", "--name"}, pos: []string{"x", "--name"}},
		{name: "help of a leaf", args: []string{"grp", "leaf", "x", "--help"}, stdout: "Usage: tg grp leaf A [B] [flags]\n\nA leaf.\n\nFlags:\n  -name string"},
		{name: "help of a group", args: []string{"grp", "-h"}, stdout: "Usage: tg grp COMMAND\n\nA group.\n\nCommands:\n  leaf  a leaf\n"},
		{name: "help command", args: []string{"help", "grp", "leaf"}, stdout: "Usage: tg grp leaf "},
		{name: "no command", args: []string{"grp"}, code: exitUsage, stderr: "tg grp: missing command\n\nUsage: tg grp COMMAND"},
		{name: "unknown command", args: []string{"grp", "nope"}, code: exitUsage, stderr: "tg grp: unknown command \"nope\"\nRun 'tg grp --help' for usage.\n"},
		{name: "flag on a group", args: []string{"grp", "--name", "x"}, code: exitUsage, stderr: "tg grp: unknown flag --name\n"},
		{name: "unknown flag", args: []string{"grp", "leaf", "x", "--nope"}, code: exitUsage, stderr: "tg grp leaf: flag provided but not defined: -nope\nRun 'tg grp leaf --help' for usage.\n"},
		{name: "missing argument", args: []string{"grp", "leaf"}, code: exitUsage, stderr: "tg grp leaf: missing argument A\n"},
		{name: "too many arguments", args: []string{"grp", "leaf", "x", "y", "z"}, code: exitUsage, stderr: "tg grp leaf: unexpected argument \"z\"\n"},
		{name: "bad output", args: []string{"grp", "leaf", "x", "--output", "xml"}, code: exitUsage, stderr: "tg grp leaf: --output must be text or json, got \"xml\"\n"},
		{name: "an answer of no prints nothing more", args: []string{"grp", "leaf", "deny"}, code: exitFail, pos: []string{"deny"}},
		{name: "a failure exits 1", args: []string{"grp", "leaf", "broken"}, code: exitFail, pos: []string{"broken"}, stderr: "tg grp leaf: it broke\n"},
		{name: "any other error exits 2", args: []string{"grp", "leaf", "unreachable"}, code: exitUsage, pos: []string{"unreachable"}, stderr: "tg grp leaf: reach it: refused\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pos []string
			var name string
			var out, errOut bytes.Buffer
			code := execute(t.Context(), testTree(&pos, &name), tt.args, strings.NewReader(""), &out, &errOut)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, errOut.String())
			}
			if diff := cmp.Diff(tt.pos, pos); diff != "" {
				t.Errorf("arguments (-want +got):\n%s", diff)
			}
			if name != tt.flag {
				t.Errorf("--name = %q, want %q", name, tt.flag)
			}
			for _, s := range []struct {
				stream, got, want string
			}{{"stdout", out.String(), tt.stdout}, {"stderr", errOut.String(), tt.stderr}} {
				if (s.want == "" && s.got != "") || !strings.HasPrefix(s.got, s.want) {
					t.Errorf("%s = %q, want it to start with %q", s.stream, s.got, s.want)
				}
			}
		})
	}
}
