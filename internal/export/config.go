package export

// Config is the export: section of the config file.
type Config struct {
	OTLP *OTLPConfig `yaml:"otlp"`
	File *FileConfig `yaml:"file"`
}

// OTLPConfig configures the OTLP exporter.
type OTLPConfig struct {
	Endpoint string `yaml:"endpoint"`
	Protocol string `yaml:"protocol"`
}

// FileConfig configures the file exporter.
type FileConfig struct {
	Path string `yaml:"path"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{} }

// Validate reports every problem, each naming its key relative to export:.
func (c *Config) Validate() error { return nil }
