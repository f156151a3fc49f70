// Command knative-controllers runs Knative Eventing's reconcilers for the
// integration tests' control plane, in one process: those of Knative's own
// mains cmd/controller (Channels, Subscriptions, sources, ...),
// cmd/mtchannel_broker (Brokers and Triggers of the MT channel-based
// Broker) and cmd/in_memory/channel_controller (InMemoryChannels), at
// knative.dev/eventing v0.50.0. Each of those mains would open
// knative.dev/pkg's health probe server on :8080, which the in-memory
// channel dispatcher needs for its receiver, so the three cannot run side
// by side as they are; here sharedmain runs with the probes disabled.
//
// The channel controller's webhook constructors (certificates, defaulting
// and validation admission controllers) are left out: no webhook runs in the
// test control plane, and sharedmain would open a webhook server on :8443,
// the dispatcher's HTTPS port.
//
// Keep the lists in step with the pinned Knative's mains when its version
// changes; they are copied from
// $(go env GOMODCACHE)/knative.dev/eventing@v0.50.0/cmd/{controller,mtchannel_broker,in_memory/channel_controller}/main.go.
package main

import (
	kubefilteredfactory "knative.dev/pkg/client/injection/kube/informers/factory/filtered"
	"knative.dev/pkg/injection/sharedmain"
	"knative.dev/pkg/signals"

	"knative.dev/eventing/pkg/apis/sinks"
	"knative.dev/eventing/pkg/auth"
	"knative.dev/eventing/pkg/certificates"
	eventingfilteredfactory "knative.dev/eventing/pkg/client/injection/informers/factory/filtered"
	"knative.dev/eventing/pkg/eventingtls"
	"knative.dev/eventing/pkg/reconciler/apiserversource"
	"knative.dev/eventing/pkg/reconciler/broker"
	mttrigger "knative.dev/eventing/pkg/reconciler/broker/trigger"
	"knative.dev/eventing/pkg/reconciler/channel"
	"knative.dev/eventing/pkg/reconciler/containersource"
	"knative.dev/eventing/pkg/reconciler/eventpolicy"
	"knative.dev/eventing/pkg/reconciler/eventtransform"
	"knative.dev/eventing/pkg/reconciler/eventtype"
	inmemorychannel "knative.dev/eventing/pkg/reconciler/inmemorychannel/controller"
	integrationsink "knative.dev/eventing/pkg/reconciler/integration/sink"
	integrationsource "knative.dev/eventing/pkg/reconciler/integration/source"
	"knative.dev/eventing/pkg/reconciler/jobsink"
	"knative.dev/eventing/pkg/reconciler/parallel"
	"knative.dev/eventing/pkg/reconciler/pingsource"
	"knative.dev/eventing/pkg/reconciler/requestreply"
	"knative.dev/eventing/pkg/reconciler/sequence"
	sourcecrd "knative.dev/eventing/pkg/reconciler/source/crd"
	"knative.dev/eventing/pkg/reconciler/subscription"
	sugarnamespace "knative.dev/eventing/pkg/reconciler/sugar/namespace"
	sugartrigger "knative.dev/eventing/pkg/reconciler/sugar/trigger"
)

func main() {
	ctx := signals.NewContext()
	// The union of the label selectors of the three mains (mtchannel_broker
	// and the channel controller add none beyond cmd/controller's).
	ctx = kubefilteredfactory.WithSelectors(ctx,
		auth.OIDCLabelSelector,
		eventingtls.TrustBundleLabelSelector,
		sinks.JobSinkJobsLabelSelector,
		eventtransform.JsonataResourcesSelector,
		certificates.SecretLabelSelectorPair,
		requestreply.SecretLabelSelector,
	)
	ctx = eventingfilteredfactory.WithSelectors(ctx,
		eventtransform.JsonataResourcesSelector,
	)
	ctx = sharedmain.WithHealthProbesDisabled(ctx)

	sharedmain.MainWithContext(ctx, "knative-controllers",
		// cmd/controller
		channel.NewController,
		subscription.NewController,
		eventtype.NewController,
		eventpolicy.NewController,
		parallel.NewController,
		sequence.NewController,
		apiserversource.NewController,
		pingsource.NewController,
		containersource.NewController,
		integrationsource.NewController,
		sourcecrd.NewController,
		jobsink.NewController,
		integrationsink.NewController,
		sugarnamespace.NewController,
		sugartrigger.NewController,
		eventtransform.NewController,
		requestreply.NewController,
		// cmd/mtchannel_broker
		broker.NewController,
		mttrigger.NewController,
		// cmd/in_memory/channel_controller, without its webhooks
		inmemorychannel.NewController,
	)
}
