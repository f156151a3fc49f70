package testenv

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"

	eventingconfig "knative.dev/eventing/pkg/apis/config"
	eventingduckv1 "knative.dev/eventing/pkg/apis/duck/v1"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	"knative.dev/eventing/pkg/apis/feature"
	eventingclient "knative.dev/eventing/pkg/client/clientset/versioned"
)

// EventingNamespace is where Knative Eventing's own objects live.
const EventingNamespace = "knative-eventing"

// Knative's annotations that the tests set.
const (
	// BrokerClassAnnotation names the Broker implementation; the
	// webhook defaults it to MTChannelBasedBroker, the one that runs here.
	BrokerClassAnnotation = "eventing.knative.dev/broker.class"
	// AsyncHandlerAnnotation, "true" on a Broker when it is created, makes
	// the ingress answer a sender 202 once the event is accepted instead
	// of after the whole delivery. Added later, it takes effect only once
	// the channel dispatcher restarts.
	AsyncHandlerAnnotation = "messaging.knative.dev/async-handler"
)

// readyTimeout bounds the wait for a Broker or Trigger to turn Ready; it is
// ~5 s on a quiet machine.
const readyTimeout = 2 * time.Minute

func eventing(t testing.TB, cfg *rest.Config) eventingclient.Interface {
	t.Helper()
	cs, err := eventingclient.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return cs
}

// Broker creates a Broker with annotations as Knative's webhook (which does
// not run here) would admit it: defaulted and validated by Knative's own
// SetDefaults and Validate with the cluster's config-br-defaults, which
// makes it an MTChannelBasedBroker on the InMemoryChannel of
// config-br-default-channel, with the cluster's default delivery. It
// returns the Broker once Ready; its status.address.url is the ingress's
// cluster DNS name, which Eventing.BrokerURL maps to loopback.
func Broker(t testing.TB, cfg *rest.Config, ns, name string, annotations map[string]string) *eventingv1.Broker {
	t.Helper()
	cs := eventing(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()

	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	cm, err := kube.CoreV1().ConfigMaps(EventingNamespace).Get(ctx, eventingconfig.DefaultsConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("testenv: reading Knative's broker defaults: %v", err)
	}
	defaults, err := eventingconfig.NewDefaultsConfigFromConfigMap(cm)
	if err != nil {
		t.Fatalf("testenv: parsing Knative's broker defaults: %v", err)
	}
	admission := eventingconfig.ToContext(ctx, &eventingconfig.Config{Defaults: defaults})

	b := &eventingv1.Broker{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations}}
	b.SetDefaults(admission)
	if errs := b.Validate(apis.WithinCreate(admission)).Filter(apis.ErrorLevel); errs != nil {
		t.Fatalf("testenv: Broker %s/%s is invalid: %v", ns, name, errs)
	}
	created := time.Now()
	if b, err = cs.EventingV1().Brokers(ns).Create(ctx, b, metav1.CreateOptions{}); err != nil {
		t.Fatalf("testenv: creating Broker %s/%s: %v", ns, name, err)
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			return cs.EventingV1().Brokers(ns).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			return cs.EventingV1().Brokers(ns).Watch(ctx, o)
		},
	}
	last := b
	_, err = watchtools.UntilWithSync(ctx, lw, &eventingv1.Broker{}, nil, func(e watch.Event) (bool, error) {
		if b, ok := e.Object.(*eventingv1.Broker); ok {
			last = b
			return b.IsReady(), nil
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("testenv: Broker %s/%s not Ready after %s: %s", ns, name, readyTimeout, conditions(last.Status.Conditions))
	}
	t.Logf("testenv: Broker %s/%s Ready after %.1fs", ns, name, time.Since(created).Seconds())
	return last
}

// TriggerOptions are a Trigger's optional parts.
type TriggerOptions struct {
	// Filter is the exact match on CloudEvents attributes (type, source,
	// extensions) an event must pass. Defaults to every event.
	Filter map[string]string
	// Delivery is the Trigger's retries, backoff and dead-letter sink.
	// Defaults to the Broker's.
	Delivery *eventingduckv1.DeliverySpec
}

// Trigger creates a Trigger on broker that delivers the events that pass
// opts' filter (nil: every event) to the URI subscriber, as Knative's
// webhook would admit it (with the eventing.knative.dev/broker label,
// without which it may never turn Ready), and returns it once Ready. Create
// it after its Broker is Ready: a Trigger that stays NoAddress for a few
// seconds is nudged with an annotation change, as reconciling it again
// makes it find the Broker's channel.
func Trigger(t testing.TB, cfg *rest.Config, ns, broker, name, subscriber string, opts *TriggerOptions) *eventingv1.Trigger {
	t.Helper()
	if opts == nil {
		opts = &TriggerOptions{}
	}
	cs := eventing(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	uri, err := apis.ParseURL(subscriber)
	if err != nil {
		t.Fatalf("testenv: Trigger %s/%s: subscriber %q: %v", ns, name, subscriber, err)
	}
	tr := &eventingv1.Trigger{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: eventingv1.TriggerSpec{
			Broker:     broker,
			Subscriber: duckv1.Destination{URI: uri},
			Delivery:   opts.Delivery,
		},
	}
	if opts.Filter != nil {
		tr.Spec.Filter = &eventingv1.TriggerFilter{Attributes: eventingv1.TriggerFilterAttributes(opts.Filter)}
	}
	// The webhook admits a Trigger with the cluster's feature flags: some
	// fields, such as spec.delivery.timeout, are refused without them.
	admission := featuresContext(t, cfg, ctx)
	tr.SetDefaults(admission) // the broker label and an empty filter
	if errs := tr.Validate(apis.WithinCreate(admission)).Filter(apis.ErrorLevel); errs != nil {
		t.Fatalf("testenv: Trigger %s/%s is invalid: %v", ns, name, errs)
	}
	if _, err = cs.EventingV1().Triggers(ns).Create(ctx, tr, metav1.CreateOptions{}); err != nil {
		t.Fatalf("testenv: creating Trigger %s/%s: %v", ns, name, err)
	}
	return WaitTrigger(t, cfg, ns, broker, name)
}

// WaitTrigger waits until the Trigger ns/name of broker, created a moment
// ago by Trigger or by the code under test, is Ready and the channel
// dispatcher has taken up its subscription, and returns it. A Trigger that
// stays NoAddress for a few seconds is nudged with an annotation change, as
// reconciling it again makes it find the Broker's channel.
func WaitTrigger(t testing.TB, cfg *rest.Config, ns, broker, name string) *eventingv1.Trigger {
	t.Helper()
	cs := eventing(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	created := time.Now()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			return cs.EventingV1().Triggers(ns).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			return cs.EventingV1().Triggers(ns).Watch(ctx, o)
		},
	}
	last := &eventingv1.Trigger{}
	ready := func(e watch.Event) (bool, error) {
		if tr, ok := e.Object.(*eventingv1.Trigger); ok {
			last = tr
			return tr.Status.ObservedGeneration == tr.Generation && tr.Status.IsReady(), nil
		}
		return false, nil
	}
	for nudges := 0; ; nudges++ {
		round, cancelRound := context.WithTimeout(ctx, 10*time.Second)
		_, err := watchtools.UntilWithSync(round, lw, &eventingv1.Trigger{}, nil, ready)
		cancelRound()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("testenv: Trigger %s/%s not Ready after %s (%d nudges): %s", ns, name, readyTimeout, nudges, conditions(last.Status.Conditions))
		}
		// Reconciling it again is what makes a Trigger stuck at
		// NoAddress find its Broker's channel.
		patch := fmt.Sprintf(`{"metadata":{"annotations":{"testenv.kjobs.dev/nudge":%q}}}`, strconv.Itoa(nudges+1))
		if _, err := cs.EventingV1().Triggers(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatalf("testenv: nudging Trigger %s/%s: %v", ns, name, err)
		}
		t.Logf("testenv: Trigger %s/%s not Ready after %.1fs (%s): nudged", ns, name, time.Since(created).Seconds(), conditions(last.Status.Conditions))
	}
	waitSubscribed(t, ctx, cs, ns, broker)
	t.Logf("testenv: Trigger %s/%s Ready and subscribed after %.1fs", ns, name, time.Since(created).Seconds())
	return last
}

// waitSubscribed waits until the in-memory channel dispatcher has taken up
// the Subscription of every Trigger of the Broker. A Trigger turns Ready a
// little before (~0.1 s): an event the Broker accepts in between reaches no
// Trigger and is lost. The dispatcher marks a channel's subscriber ready
// once its fan-out has it (knative.dev/eventing v0.50.0
// pkg/reconciler/inmemorychannel/dispatcher/inmemorychannel.go).
func waitSubscribed(t testing.TB, ctx context.Context, cs eventingclient.Interface, ns, broker string) {
	t.Helper()
	var last string
	for {
		last = subscribed(ctx, cs, ns, broker)
		if last == "" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("testenv: Broker %s/%s: the channel dispatcher has not taken up every Trigger: %s", ns, broker, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// subscribed returns what is missing before every Trigger of the Broker is
// a ready subscriber of its channel, or "".
func subscribed(ctx context.Context, cs eventingclient.Interface, ns, broker string) string {
	b, err := cs.EventingV1().Brokers(ns).Get(ctx, broker, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	channel := b.Status.Annotations["knative.dev/channelName"]
	if channel == "" {
		return "the Broker names no channel yet"
	}
	triggers, err := cs.EventingV1().Triggers(ns).List(ctx, metav1.ListOptions{LabelSelector: "eventing.knative.dev/broker=" + broker})
	if err != nil {
		return err.Error()
	}
	imc, err := cs.MessagingV1().InMemoryChannels(ns).Get(ctx, channel, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	if len(imc.Spec.Subscribers) < len(triggers.Items) {
		return fmt.Sprintf("%d subscribers for %d Triggers", len(imc.Spec.Subscribers), len(triggers.Items))
	}
	for _, sub := range imc.Spec.Subscribers {
		ready := false
		for _, st := range imc.Status.Subscribers {
			ready = ready || (st.UID == sub.UID && st.Ready == corev1.ConditionTrue && st.ObservedGeneration >= sub.Generation)
		}
		if !ready {
			return fmt.Sprintf("subscriber %s not ready", sub.UID)
		}
	}
	return ""
}

// featuresContext returns ctx with the feature flags of the cluster's
// config-features, as Knative's webhook gives them to SetDefaults and
// Validate.
func featuresContext(t testing.TB, cfg *rest.Config, ctx context.Context) context.Context {
	t.Helper()
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	cm, err := kube.CoreV1().ConfigMaps(EventingNamespace).Get(ctx, feature.FlagsConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("testenv: reading Knative's feature flags: %v", err)
	}
	flags, err := feature.NewFlagsConfigFromConfigMap(cm)
	if err != nil {
		t.Fatalf("testenv: parsing Knative's feature flags: %v", err)
	}
	return feature.ToContext(ctx, flags)
}

// conditions formats the conditions that are not True, or all of them.
func conditions(conds duckv1.Conditions) string {
	s := ""
	for _, c := range conds {
		if c.Status == "True" {
			continue
		}
		s += fmt.Sprintf("%s=%s (%s: %s); ", c.Type, c.Status, c.Reason, c.Message)
	}
	if s == "" {
		return fmt.Sprintf("conditions %v", conds)
	}
	return s
}
