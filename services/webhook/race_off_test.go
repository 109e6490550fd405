//go:build !race

package webhooksvc_test

const slowdown = 1
