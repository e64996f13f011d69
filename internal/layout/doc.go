// Package layout holds the repository's structural rules as tests: one
// place for the OTLP wire format, and no source file too big to read
// (issue 9). It has no code of its own.
package layout
