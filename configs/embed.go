// Package configs holds switchboard's example configuration files and embeds
// the default one, so the daemon runs with nothing installed beside it.
//
// Every *.yaml file here is loaded through the daemon's strict config loader by
// this package's tests, so the examples cannot rot; the tests also hold the
// systemd units (switchboard.service, xmlapi.service), the Prometheus rules
// (switchboard.rules.yml) and the Grafana dashboard (grafana-dashboard.json)
// to what the daemon and the front end implement and export.
package configs

import _ "embed"

// Default is configs/default.yaml, the configuration the daemon uses when no
// -config file is given.
//
//go:embed default.yaml
var Default []byte
