// Package ingest is being written.
package ingest
