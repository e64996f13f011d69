// Package slo is being written.
package slo
