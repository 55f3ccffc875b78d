// Package monitoring holds the tests of what platform teams watch the
// operator with: the alert rules in config/prometheus, checked and unit-tested
// with promtool, and checked to name only series the operator exports.
package monitoring
