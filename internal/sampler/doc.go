// Package sampler is being written.
package sampler
