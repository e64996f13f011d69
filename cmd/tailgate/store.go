package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tailgate-sre/tailgate/internal/store/postgres"
	"github.com/tailgate-sre/tailgate/internal/store/sqlite"
)

func storeCommand() *command {
	return &command{
		name:    "store",
		summary: "move or back up tailgate's state",
		help: `copy moves an installation from the embedded store to the fleet's
PostgreSQL store without resetting any budget; backup makes an online copy
of the embedded store.
`,
		subs: []*command{storeCopyCommand(), storeBackupCommand()},
	}
}

func storeCopyCommand() *command {
	var from, to, dsnFile, instance *string
	return &command{
		name:     "copy",
		summary:  "copy the embedded store into an empty PostgreSQL database",
		synopsis: "--from sqlite:DIR --to postgres:DSN [--instance NAME]",
		help: `Copies everything the embedded store in DIR (storage.path) holds into
the PostgreSQL database (migrated first; it must hold no tailgate state):
SLI counts, corrections, alert history, gate decisions, overrides and
deploy markers, golden signals, flags, incidents, and the audit log row for
row, so its hash chain verifies afterwards. One transaction: on any error
nothing is written.

The counts and the write-ahead log's marks are written under --instance
(default: the host name, as "serve" uses): start the moved tailgate with
that instance name and the same storage.path, and it replays its log from
the marks, counting nothing twice. Stop the daemon first, or counts it
flushes after the copy are not moved.

--to-file names a file holding the DSN instead of --to (a secret).
`,
		maxArgs: 0,
		flags: func(fs *flag.FlagSet) {
			from = fs.String("from", "", "sqlite:DIR, the embedded store's directory")
			to = fs.String("to", "", "postgres:DSN (postgres://user@host:5432/db?sslmode=...)")
			dsnFile = fs.String("to-file", "", "a file holding the PostgreSQL DSN, instead of --to")
			instance = fs.String("instance", "", "the instance name the moved tailgate runs with (default: the host name)")
		},
		run: func(ctx context.Context, inv *invocation) error {
			dir, ok := strings.CutPrefix(*from, "sqlite:")
			if !ok || dir == "" {
				return usagef("--from must be sqlite:DIR, got %q", *from)
			}
			dsn, ok := strings.CutPrefix(*to, "postgres:")
			switch {
			case *dsnFile != "" && *to != "":
				return usagef("give --to or --to-file, not both")
			case *dsnFile != "":
				b, err := os.ReadFile(*dsnFile)
				if err != nil {
					return err
				}
				dsn = strings.TrimSpace(string(b))
			case !ok || dsn == "":
				return usagef("--to must be postgres:DSN, got %q", postgres.Redact(*to))
			}
			name := *instance
			if name == "" {
				h, err := os.Hostname()
				if err != nil || h == "" {
					return usagef("no host name; give --instance")
				}
				name = h
			}
			src, err := sqlite.OpenReadOnly(ctx, dir)
			if err != nil {
				return err
			}
			defer src.Close()
			dst, err := postgres.Open(ctx, dsn, postgres.Options{Instance: name})
			if err != nil {
				return err
			}
			defer dst.Close()
			start := time.Now()
			stats, err := dst.Import(ctx, src.ScanTable, func(table string, rows int64) {
				fmt.Fprintf(inv.stderr, "  %-22s %d rows\n", table, rows)
			})
			if err != nil {
				return err
			}
			var total int64
			for _, n := range stats {
				total += n
			}
			fmt.Fprintf(inv.stdout, "copied %d rows from %s to %s as instance %q in %s\n", total, src.Path(), dst.Where(), name,
				time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
}

func storeBackupCommand() *command {
	var storage, to *string
	return &command{
		name:     "backup",
		summary:  "an online, consistent copy of the embedded store",
		synopsis: "--storage DIR --to FILE",
		help: `Writes one consistent snapshot of the embedded store in DIR (storage.path)
to FILE, while the daemon runs or not (SQLite's VACUUM INTO). FILE must not
exist; it is created readable by this user alone. To restore, stop the
daemon and put FILE in place of DIR/tailgate.db.
`,
		maxArgs: 0,
		flags: func(fs *flag.FlagSet) {
			storage = fs.String("storage", "", "the storage directory (storage.path) holding "+sqlite.FileName)
			to = fs.String("to", "", "the backup file to create")
		},
		run: func(ctx context.Context, inv *invocation) error {
			if *storage == "" || *to == "" {
				return usagef("--storage and --to are required")
			}
			if err := sqlite.Backup(ctx, *storage, *to); err != nil {
				return err
			}
			st, err := os.Stat(*to)
			if err != nil {
				return err
			}
			fmt.Fprintf(inv.stdout, "backed up %s to %s (%d bytes)\n", *storage, *to, st.Size())
			return nil
		},
	}
}
