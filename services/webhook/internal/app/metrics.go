package app

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the service's Prometheus series.
type Metrics struct {
	Deliveries   *prometheus.CounterVec // by outcome: succeeded, retrying, dead, stale
	Attempts     *prometheus.CounterVec // by result: 2xx, 4xx, 5xx, error
	Latency      prometheus.Histogram
	DeadLetters  prometheus.Counter
	RetryBacklog prometheus.Gauge
	ConsumerLag  *prometheus.GaugeVec // by consumer: fanout, endpoints
	Disabled     prometheus.Counter
	// TransformsLimited counts jq programs set aside after exceeding the limits of a transform in a delivery.
	TransformsLimited prometheus.Counter
	// Notices counts operational notices raised, by kind; NoticesSent the tries to send them, by result.
	Notices     *prometheus.CounterVec
	NoticesSent *prometheus.CounterVec
}

// NewMetrics registers the series on reg (nil: unregistered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "webhook_deliveries_total",
			Help: "Delivery attempts by what they led to: succeeded, retrying, dead."}, []string{"outcome"}),
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "webhook_attempts_total",
			Help: "Attempts by result class: 2xx, 3xx, 4xx, 5xx, error."}, []string{"result"}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "webhook_attempt_duration_seconds",
			Help:    "Time from sending a webhook to the end of the response excerpt.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30}}),
		DeadLetters: prometheus.NewCounter(prometheus.CounterOpts{Name: "webhook_dead_letters_total",
			Help: "Deliveries that ran out of attempts or lost their endpoint."}),
		RetryBacklog: prometheus.NewGauge(prometheus.GaugeOpts{Name: "webhook_retry_backlog",
			Help: "Retries scheduled for later (sampled from the delivery queue)."}),
		ConsumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "webhook_consumer_lag_messages",
			Help: "Messages not yet acknowledged: fanout (case events), endpoints (delivery attempts)."}, []string{"consumer"}),
		Disabled: prometheus.NewCounter(prometheus.CounterOpts{Name: "webhook_endpoints_disabled_total",
			Help: "Endpoints disabled by the service (410 Gone, failing for too long)."}),
		TransformsLimited: prometheus.NewCounter(prometheus.CounterOpts{Name: "webhook_transforms_limited_total",
			Help: "jq programs set aside after a delivery's run exceeded the limits of a transform (time, memory, size)."}),
		Notices: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "webhook_notices_total",
			Help: "Operational notices raised by this instance, by kind: endpoint.disabled, endpoint.failing, endpoint.recovered, endpoint.transform_limited."},
			[]string{"kind"}),
		NoticesSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "webhook_notice_sends_total",
			Help: "Tries to send an operational notice to its tenant's notice URL, by result: sent, failed, no_url."}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.Deliveries, m.Attempts, m.Latency, m.DeadLetters, m.RetryBacklog, m.ConsumerLag, m.Disabled, m.TransformsLimited, m.Notices, m.NoticesSent)
	}
	return m
}

func resultClass(status int, err error) string {
	switch {
	case err != nil || status == 0:
		return "error"
	case status < 300:
		return "2xx"
	case status < 400:
		return "3xx"
	case status < 500:
		return "4xx"
	}
	return "5xx"
}
