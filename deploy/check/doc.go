// Package check holds the deployment's tests, in a module of their own so
// that Helm, BuildKit and the Kubernetes API types stay out of tailgate's:
// the Dockerfile parses and builds a static, versioned binary, and the
// Helm chart lints and renders objects that decode strictly into the
// Kubernetes API types and a config that tailgate loads.
package check
