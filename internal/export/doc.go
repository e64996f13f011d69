// Package export is being written.
package export
