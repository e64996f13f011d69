package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/tailgate-sre/tailgate/internal/api"
	"github.com/tailgate-sre/tailgate/internal/units"
)

func fleetCommand() *command {
	return &command{
		name:    "fleet",
		summary: "the instances of a fleet on PostgreSQL",
		subs:    []*command{fleetStatusCommand()},
	}
}

func fleetStatusCommand() *command {
	return &command{
		name:     "status",
		summary:  "list the cell's instances, their role and health",
		synopsis: "[--server URL] [--output text|json]",
		help: `Asks the tailgate at --server for the instances of its cell, by their
heartbeats in the shared store: each one's role (leader or not), version,
the age of its last heartbeat and of its last stored counts, and health.
An instance that missed three heartbeats shows "no heartbeat".
`,
		maxArgs: 0,
		common:  withClient | withOutput,
		run: func(ctx context.Context, inv *invocation) error {
			var f api.Fleet
			if err := inv.call(ctx, "GET", "/api/v1/fleet", nil, &f); err != nil {
				return err
			}
			if inv.json() {
				return writeJSON(inv.stdout, f)
			}
			cell := f.Cell
			if cell == "" {
				cell = "(no cell name)"
			}
			fmt.Fprintf(inv.stdout, "cell %s on %s, asked %s\n", cell, f.Store, f.Instance)
			tw := tabwriter.NewWriter(inv.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "INSTANCE\tROLE\tVERSION\tHEARTBEAT\tLAST FLUSH\tHEALTH")
			for _, m := range f.Members {
				role := "follower"
				if m.Leader {
					role = "leader"
				}
				flush := "never"
				if m.FlushAge != nil {
					flush = units.HumanDuration(secs(*m.FlushAge)) + " ago"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%s\t%s\n", m.Instance, role, m.Version,
					units.HumanDuration(secs(m.HeartbeatAge)), flush, m.Health)
			}
			return tw.Flush()
		},
	}
}

// secs converts seconds to a duration.
func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
