// Package demo runs tailgate's whole loop on a synthetic system: it starts a
// real daemon with embedded storage in a temporary directory, drives a small
// fleet of microservices (frontend → checkout → payments, checkout →
// inventory, with their database calls) instrumented with the OpenTelemetry
// Go SDK that export real OTLP to it over loopback, plays a calm phase, a
// cascading failure and a recovery, and shows what tailgate makes of it:
// spans kept and dropped, error budgets and burn rates, alerts, and the
// release gate's answer.
//
// The traffic model (Model, Schedule) is pure and takes its randomness and
// time from the caller; Run wires it to the daemon, the SDK and the terminal.
package demo
