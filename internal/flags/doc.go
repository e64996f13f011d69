// Package flags owns tailgate's feature flags: their definitions (from the
// config file or the API), their evaluation against an OpenFeature
// evaluation context, and the OpenFeature Remote Evaluation Protocol
// (OFREP) endpoints that any OpenFeature SDK with an OFREP provider calls.
//
// # Evaluation
//
// A flag has named variants (booleans, strings, numbers or objects) and a
// default variant. Its targeting rules are tried in order: a rule whose
// condition holds on the context decides, either with a fixed variant
// (reason TARGETING_MATCH) or with a percentage rollout (reason SPLIT),
// which is deterministic in the flag key and the context's targetingKey, so
// one user sees the same variant on every instance and after a restart. A
// flag without targeting, or whose rules all miss, serves its default
// variant (reason STATIC).
//
// A flag's state can force one variant for everyone: an operator's flip,
// or a kill switch that fired. A forced variant wins over targeting and is
// served with reason STATIC and the metadata key "forced_by".
package flags
