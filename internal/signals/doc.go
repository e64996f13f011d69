// Package signals is being written.
package signals
