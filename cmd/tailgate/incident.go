package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tailgate-sre/tailgate/internal/api"
	"github.com/tailgate-sre/tailgate/internal/incident"
)

func incidentCommand() *command {
	return &command{
		name:    "incident",
		aliases: []string{"incidents"},
		summary: "incidents: declare, list, show, assign, note, update, mitigate, resolve, postmortem",
		help: `A page declares an incident by itself (incidents.declare_on: page), and pages of
one cascade join it; people declare the others. Roles follow the Incident
Command System: commander, comms, ops (docs/incidents.md).`,
		subs: []*command{incidentDeclareCommand(), incidentListCommand(), incidentShowCommand(), incidentAssignCommand(),
			incidentTextCommand("note", "notes", "add a line to the timeline"),
			incidentTextCommand("update", "updates", "a status update, sent to the webhooks and the feed"),
			incidentStateCommand("mitigate", "the impact has stopped"), incidentStateCommand("resolve", "the incident is over"),
			incidentPostmortemCommand()},
	}
}

func incidentDeclareCommand() *command {
	var service, title, severity, commander *string
	return &command{
		name:     "declare",
		summary:  "open an incident",
		synopsis: "--service S --title T [--severity sev2] [--commander NAME] [flags]",
		common:   withClient | withOutput,
		flags: func(fs *flag.FlagSet) {
			service = fs.String("service", "", "the service in trouble (required)")
			title = fs.String("title", "", "what is happening, in a line (required)")
			severity = fs.String("severity", "sev2", "sev1 (worst) to sev4")
			commander = fs.String("commander", "", "the Incident Commander")
		},
		run: func(ctx context.Context, inv *invocation) error {
			if err := required(inv.fs, "service", "title"); err != nil {
				return err
			}
			var inc incident.Incident
			req := incident.DeclareRequest{Service: *service, Title: *title, Severity: *severity, Commander: *commander}
			if err := inv.call(ctx, http.MethodPost, "/api/v1/incidents", req, &inc); err != nil {
				return err
			}
			if inv.json() {
				return writeJSON(inv.stdout, inc)
			}
			fmt.Fprintf(inv.stdout, "%s declared: %s\n", inc.ID, inc.Title)
			return nil
		},
	}
}

func incidentListCommand() *command {
	var all *bool
	return &command{
		name:     "list",
		aliases:  []string{"ls"},
		summary:  "open incidents (--all: resolved too)",
		synopsis: "[--all] [flags]",
		common:   withClient | withOutput,
		flags: func(fs *flag.FlagSet) {
			all = fs.Bool("all", false, "include resolved incidents")
		},
		run: func(ctx context.Context, inv *invocation) error {
			path := "/api/v1/incidents"
			if *all {
				path += "?state=all"
			}
			var out struct {
				Incidents []incident.Incident `json:"incidents"`
			}
			if err := inv.call(ctx, http.MethodGet, path, nil, &out); err != nil {
				return err
			}
			if inv.json() {
				return writeJSON(inv.stdout, out)
			}
			if len(out.Incidents) == 0 {
				fmt.Fprintln(inv.stdout, "no incidents")
				return nil
			}
			tw := tabwriter.NewWriter(inv.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSEV\tSTATE\tDECLARED\tSERVICES\tCOMMANDER\tTITLE")
			for _, i := range out.Incidents {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i.ID, i.Severity, i.State, i.DeclaredAt.UTC().Format(time.RFC3339),
					strings.Join(i.Services, ","), orDash(i.Roles[incident.Commander]), i.Title)
			}
			return tw.Flush()
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func incidentShowCommand() *command {
	return &command{
		name:     "show",
		aliases:  []string{"get"},
		summary:  "an incident: roles, state, timeline",
		synopsis: "ID [flags]",
		args:     "ID",
		minArgs:  1,
		maxArgs:  1,
		common:   withClient | withOutput,
		run: func(ctx context.Context, inv *invocation) error {
			var v incident.View
			if err := inv.call(ctx, http.MethodGet, "/api/v1/incidents/"+url.PathEscape(inv.args[0]), nil, &v); err != nil {
				return err
			}
			if inv.json() {
				return writeJSON(inv.stdout, v)
			}
			writeIncident(inv.stdout, v)
			return nil
		},
	}
}

func writeIncident(w io.Writer, v incident.View) {
	fmt.Fprintf(w, "%s %s [%s, %s]\n", v.ID, v.Title, strings.ToUpper(v.Severity), v.State)
	fmt.Fprintf(w, "  services: %s", strings.Join(v.Services, ", "))
	if v.Origin != "" {
		fmt.Fprintf(w, " (likely origin: %s)", v.Origin)
	}
	fmt.Fprintln(w)
	for _, r := range incident.Roles() {
		fmt.Fprintf(w, "  %-9s %s\n", string(r)+":", orDash(v.Roles[r]))
	}
	if v.SuggestMitigated != "" {
		fmt.Fprintf(w, "  suggestion: %s\n", v.SuggestMitigated)
	}
	fmt.Fprintln(w, "  timeline:")
	for _, e := range v.Timeline {
		fmt.Fprintf(w, "    %s  %-14s %s\n", e.At.UTC().Format("15:04:05"), e.Kind, e.Text)
	}
}

func incidentAssignCommand() *command {
	var role, to *string
	return &command{
		name:     "assign",
		summary:  "give a role to a person (a change of holder is a handoff)",
		synopsis: "ID --role commander|comms|ops --to NAME [flags]",
		args:     "ID",
		minArgs:  1,
		maxArgs:  1,
		common:   withClient | withOutput,
		flags: func(fs *flag.FlagSet) {
			role = fs.String("role", "", "commander, comms or ops (required)")
			to = fs.String("to", "", "who takes it (required)")
		},
		run: func(ctx context.Context, inv *invocation) error {
			if err := required(inv.fs, "role", "to"); err != nil {
				return err
			}
			if _, err := incident.ParseRole(*role); err != nil {
				return usagef("--role must be commander, comms or ops, got %q", *role)
			}
			return incidentChange(ctx, inv, "assign", api.IncidentChangeRequest{Role: *role, To: *to})
		},
	}
}

// incidentChange posts an action and prints the incident after it.
func incidentChange(ctx context.Context, inv *invocation, action string, req api.IncidentChangeRequest) error {
	var inc incident.Incident
	if err := inv.call(ctx, http.MethodPost, "/api/v1/incidents/"+url.PathEscape(inv.args[0])+"/"+action, req, &inc); err != nil {
		return err
	}
	if inv.json() {
		return writeJSON(inv.stdout, inc)
	}
	var roles []string
	for _, r := range incident.Roles() {
		roles = append(roles, string(r)+" "+orDash(inc.Roles[r]))
	}
	fmt.Fprintf(inv.stdout, "%s %s: %s\n", inc.ID, inc.State, strings.Join(roles, ", "))
	return nil
}

func incidentTextCommand(name, action, summary string) *command {
	return &command{
		name:     name,
		summary:  summary,
		synopsis: "ID TEXT [flags]",
		args:     "ID TEXT",
		minArgs:  2,
		maxArgs:  2,
		common:   withClient | withOutput,
		run: func(ctx context.Context, inv *invocation) error {
			return incidentChange(ctx, inv, action, api.IncidentChangeRequest{Text: inv.args[1]})
		},
	}
}

func incidentStateCommand(name, summary string) *command {
	var note *string
	return &command{
		name:     name,
		summary:  summary,
		synopsis: "ID [--note TEXT] [flags]",
		args:     "ID",
		minArgs:  1,
		maxArgs:  1,
		common:   withClient | withOutput,
		flags: func(fs *flag.FlagSet) {
			note = fs.String("note", "", "a line for the timeline")
		},
		run: func(ctx context.Context, inv *invocation) error {
			return incidentChange(ctx, inv, name, api.IncidentChangeRequest{Text: *note})
		},
	}
}

func incidentPostmortemCommand() *command {
	return &command{
		name:     "postmortem",
		summary:  "the post-mortem draft in Markdown (--output json: its numbers)",
		synopsis: "ID [flags]",
		args:     "ID",
		minArgs:  1,
		maxArgs:  1,
		common:   withClient | withOutput,
		run: func(ctx context.Context, inv *invocation) error {
			path := "/api/v1/incidents/" + url.PathEscape(inv.args[0]) + "/postmortem"
			if inv.json() {
				var rep incident.Report
				if err := inv.call(ctx, http.MethodGet, path+"?format=json", nil, &rep); err != nil {
					return err
				}
				return writeJSON(inv.stdout, rep)
			}
			var body rawBody
			if err := inv.call(ctx, http.MethodGet, path, nil, &body); err != nil {
				return err
			}
			_, err := inv.stdout.Write(body)
			return err
		},
	}
}
