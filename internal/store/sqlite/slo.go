package sqlite

// sloSchema holds the tables of SLI minute buckets, corrections and alert
// transitions.
var sloSchema = []string{}
