// Package gate decides whether a change may ship, from the error-budget
// policy and the SLO states of its service.
//
// The decision core is pure: a compiled Policy evaluates a CheckRequest over
// constructed SLO states, the active overrides and an explicit now, and
// returns a Decision that carries its verdict (allow, canary, deny), the
// policy rule that decided and the reasons behind it. Gate wraps that core
// with what must survive a restart: the audit log of every check, the
// time-boxed overrides, and the deploy markers the risk report reads.
//
// The default policy is the example error budget policy of the Google SRE
// Workbook: a service that has spent its budget over the SLO window halts
// every change but fixes, security fixes and rollbacks; a firing
// page-severity burn-rate alert denies everything but rollbacks and fixes;
// a budget under 25% lets features ship only as a canary. Stale or missing
// SLO data fails open or closed per change class.
package gate
