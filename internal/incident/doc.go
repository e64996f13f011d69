// Package incident runs incidents: declared from page alerts (pages of one
// cascade join one incident) or by a person, with the Incident Command
// System's roles (Commander, Communications lead, Operations lead), a
// timeline that writes itself from what tailgate already records (alerts,
// deploy markers, gate decisions and overrides, flag flips) plus human
// notes and status updates, a lifecycle (declared, mitigated, resolved)
// and a post-mortem draft in the Google SRE template, whose impact
// numbers come from the same minute counts as the error budgets.
//
// Incidents and their recorded entries live in the store, so every
// instance of a fleet sees the same incident; events that other parts
// already store (deploys, decisions, flips) are read into the timeline
// when it is shown, not copied.
package incident
