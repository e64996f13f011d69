package sqlite

// signalsSchema holds the tables of golden-signal minute buckets.
var signalsSchema = []string{}
