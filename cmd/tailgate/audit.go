package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/tailgate-sre/tailgate/internal/gate"
	"github.com/tailgate-sre/tailgate/internal/store/postgres"
	"github.com/tailgate-sre/tailgate/internal/store/sqlite"
)

func auditCommand() *command {
	return &command{
		name:    "audit",
		summary: "the hash-chained audit log",
		help: `verify checks the audit log of an embedded store (the storage.path
directory) or of a fleet's PostgreSQL store, in place, read-only, while
the daemon runs or not.
`,
		subs: []*command{auditVerifyCommand()},
	}
}

func auditVerifyCommand() *command {
	var storage, pgDSN *string
	return &command{
		name:     "verify",
		summary:  "check that the audit log's hash chain is intact",
		synopsis: "--storage DIR | --postgres DSN",
		help: `Walks the audit log from its first row and checks each row's sequence
number, its link to the previous row and its hash. Prints the number of
intact rows and the last row's hash; record that hash elsewhere to catch a
later rewrite of the newest rows, which no chain shows by itself.

Exits 0 when the chain is intact, 1 when it is broken (the first broken
row's seq, kind and time, and what does not match, are printed), 2 when
the store cannot be read.
`,
		maxArgs: 0,
		common:  withOutput,
		flags: func(fs *flag.FlagSet) {
			storage = fs.String("storage", "", "the storage directory (storage.path) holding "+sqlite.FileName)
			pgDSN = fs.String("postgres", "", "the fleet store's connection string (storage.postgres), instead of --storage")
		},
		run: func(ctx context.Context, inv *invocation) error {
			switch {
			case *storage != "" && *pgDSN != "":
				return usagef("give --storage or --postgres, not both")
			case *pgDSN != "":
				db, err := postgres.Open(ctx, *pgDSN, postgres.Options{Instance: "audit-verify", ReadOnly: true})
				if err != nil {
					return err
				}
				defer db.Close()
				return verifyAudit(ctx, inv, db)
			case *storage == "":
				return usagef("--storage or --postgres is required")
			}
			return runAuditVerify(ctx, inv, *storage)
		},
	}
}

func runAuditVerify(ctx context.Context, inv *invocation, dir string) error {
	db, err := sqlite.OpenReadOnly(ctx, dir)
	if err != nil {
		return err
	}
	defer db.Close()
	return verifyAudit(ctx, inv, db)
}

// verifyAudit checks store's audit chain and prints the report.
func verifyAudit(ctx context.Context, inv *invocation, store gate.AuditStore) error {
	rep, err := gate.VerifyAudit(ctx, store)
	if err != nil {
		return err
	}
	if inv.json() {
		if err := writeJSON(inv.stdout, rep); err != nil {
			return err
		}
	} else if b := rep.Broken; b != nil {
		fmt.Fprintf(inv.stdout, "audit log BROKEN at row %d (%s, %s): %s\n", b.Seq, b.Kind, b.Time.UTC().Format(time.RFC3339Nano), b.Problem)
		fmt.Fprintf(inv.stdout, "%d rows intact before it\n", rep.Rows)
	} else {
		head := rep.Head
		if head == "" {
			head = "none (empty log)"
		}
		fmt.Fprintf(inv.stdout, "audit log intact: %d rows, head %s\n", rep.Rows, head)
	}
	if rep.Broken != nil {
		return exitCode(exitFail)
	}
	return nil
}
