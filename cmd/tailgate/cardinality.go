package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/tailgate-sre/tailgate/internal/signals"
)

func cardinalityCommand() *command {
	var service *string
	var top *int
	var failOnFlagged *bool
	return &command{
		name:     "cardinality",
		summary:  "attribute cardinality report",
		synopsis: "[--service S] [--top N] [--server URL] [--output text|json] [--fail-on-flagged]",
		help: `Asks the running tailgate at --server (env TAILGATE_SERVER) which span and
resource attributes have the most distinct values per service, and what
they would cost as metric labels. Keys over the flag threshold are marked
with a suggestion. --top is per service (0 for every key).
`,
		common: withClient | withOutput,
		flags: func(fs *flag.FlagSet) {
			service = fs.String("service", "", "only this service")
			top = fs.Int("top", 10, "keys per service, by distinct values (0 for all)")
			failOnFlagged = fs.Bool("fail-on-flagged", false, "exit 1 when a key is flagged")
		},
		run: func(ctx context.Context, inv *invocation) error {
			if *top < 0 {
				return usagef("--top must not be negative, got %d", *top)
			}
			q := url.Values{"top": {strconv.Itoa(*top)}}
			if *service != "" {
				q.Set("service", *service)
			}
			var rep signals.CardinalityReport
			if err := inv.call(ctx, "GET", "/api/v1/cardinality?"+q.Encode(), nil, &rep); err != nil {
				return err
			}
			if inv.json() {
				if err := writeJSON(inv.stdout, rep); err != nil {
					return err
				}
			} else {
				writeCardinality(inv.stdout, rep)
			}
			if *failOnFlagged {
				for _, s := range rep.Services {
					if s.Flagged > 0 {
						return exitCode(exitFail)
					}
				}
			}
			return nil
		},
	}
}

// writeCardinality prints the report as a table, then the flagged keys with
// their suggestions.
func writeCardinality(w io.Writer, rep signals.CardinalityReport) {
	fmt.Fprintf(w, "Attribute cardinality since %s (flag at %s distinct values)\n",
		rep.WindowStart.Format("2006-01-02 15:04 MST"), cardCount(uint64(rep.FlagThreshold)))
	overflow := ""
	if rep.Overflowing {
		overflow = ", new label sets fold into otel_metric_overflow"
	}
	fmt.Fprintf(w, "RED metric series: %d of %d%s\n\n", rep.Series, rep.SeriesLimit, overflow)
	if len(rep.Services) == 0 {
		fmt.Fprintln(w, "No spans seen yet.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLAG\tSERVICE\tKEY\tSOURCE\tDISTINCT\tSHARE\tSERIES AS LABEL")
	var flagged []string
	for _, s := range rep.Services {
		if len(s.Keys) == 0 {
			fmt.Fprintf(tw, "\t%s\t-\n", s.Service)
		}
		for _, k := range s.Keys {
			distinct := cardCount(k.Distinct)
			if k.DistinctIsLowerBound {
				distinct = ">=" + distinct
			}
			series := cardCount(k.SeriesAsLabel)
			if k.AddedSeries > 0 {
				series += " (+" + cardCount(k.AddedSeries) + ")"
			}
			flag := ""
			if k.Flagged {
				flag = "HIGH"
				flagged = append(flagged, fmt.Sprintf("  %s %s: ~%s distinct values would add ~%s series. %s",
					s.Service, k.Key, cardCount(k.Distinct), cardCount(k.AddedSeries), cardSentence(k.Suggestion)))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", flag, s.Service, k.Key, k.Source, distinct, cardShare(k.Share), series)
		}
		if s.UntrackedKeys > 0 {
			fmt.Fprintf(tw, "\t%s\t(%d more keys not tracked)\n", s.Service, s.UntrackedKeys)
		}
	}
	tw.Flush()
	if len(flagged) > 0 {
		fmt.Fprintf(w, "\nFlagged keys (never use them as metric labels):\n")
		for _, f := range flagged {
			fmt.Fprintln(w, f)
		}
	}
}

// cardCount writes n exactly below 10,000 and with a unit above.
func cardCount(n uint64) string {
	switch {
	case n < 10_000:
		return strconv.FormatUint(n, 10)
	case n < 1_000_000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	case n < 1_000_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1fG", float64(n)/1e9)
}

func cardShare(f float64) string {
	if f > 0 && f < 0.005 {
		return "<1%"
	}
	return fmt.Sprintf("%.0f%%", 100*f)
}

// cardSentence makes a suggestion a sentence: capital first, full stop.
func cardSentence(s string) string {
	if s == "" {
		return s
	}
	if s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	if s[len(s)-1] != '.' {
		s += "."
	}
	return s
}
