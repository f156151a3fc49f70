// Command knative-mtping is Knative Eventing's PingSource adapter
// (knative.dev/eventing v0.50.0 cmd/mtping) for the integration tests'
// control plane, with its health probe server disabled: Knative's main
// would open it on :8080, which the in-memory channel dispatcher needs for
// its receiver. Everything else is cmd/mtping's main as it is; keep it in
// step with $(go env GOMODCACHE)/knative.dev/eventing@v0.50.0/cmd/mtping/main.go.
package main

import (
	filteredFactory "knative.dev/pkg/client/injection/kube/informers/factory/filtered"
	"knative.dev/pkg/signals"

	"knative.dev/eventing/pkg/adapter/mtping"
	"knative.dev/eventing/pkg/adapter/v2"
	"knative.dev/eventing/pkg/auth"
	"knative.dev/eventing/pkg/eventingtls"
)

const component = "pingsource-mt-adapter"

func main() {
	sctx := signals.NewContext()

	// As in cmd/mtping: a SIGTERM close to the minute delays the
	// cancellation, so that a tick is not lost.
	ctx := mtping.NewDelayingContext(sctx, mtping.GetNoShutDownAfterValue())

	ctx = adapter.WithController(ctx, mtping.NewController)
	ctx = adapter.WithHAEnabled(ctx)
	ctx = adapter.WithConfigWatcherEnabled(ctx)
	ctx = adapter.WithConfiguratorOptions(ctx, []adapter.ConfiguratorOption{
		adapter.WithLoggerConfigurator(adapter.NewLoggerConfiguratorFromConfigMap(component)),
		adapter.WithObservabilityConfigurator(adapter.NewObservabilityConfiguratorFromConfigMap()),
		adapter.WithCloudEventsStatusReporterConfigurator(adapter.NewCloudEventsReporterConfiguratorFromConfigMap()),
	})
	ctx = filteredFactory.WithSelectors(ctx,
		auth.OIDCLabelSelector,
		eventingtls.TrustBundleLabelSelector,
	)
	// The one change: no probe server on :8080.
	ctx = adapter.WithHealthProbesDisabled(ctx)

	adapter.MainWithContext(ctx, component, mtping.NewEnvConfig, mtping.NewAdapter)
}
