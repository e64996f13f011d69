package signals

// Config is the signals: section of the config file.
type Config struct{}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{} }

// Validate reports every problem, each naming its key relative to signals:.
func (c *Config) Validate() error { return nil }
