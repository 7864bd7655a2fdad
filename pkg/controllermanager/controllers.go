package controllermanager

import (
	"context"
	"fmt"
	"os"

	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/controller/clusterroleaggregation"
	"github.com/skiff-project/skiff/pkg/controller/cronjob"
	"github.com/skiff-project/skiff/pkg/controller/daemonset"
	"github.com/skiff-project/skiff/pkg/controller/deployment"
	"github.com/skiff-project/skiff/pkg/controller/disruption"
	"github.com/skiff-project/skiff/pkg/controller/endpoints"
	"github.com/skiff-project/skiff/pkg/controller/garbagecollector"
	"github.com/skiff-project/skiff/pkg/controller/job"
	"github.com/skiff-project/skiff/pkg/controller/namespace"
	"github.com/skiff-project/skiff/pkg/controller/nodeipam"
	"github.com/skiff-project/skiff/pkg/controller/nodelifecycle"
	"github.com/skiff-project/skiff/pkg/controller/podautoscaler"
	"github.com/skiff-project/skiff/pkg/controller/replicaset"
	"github.com/skiff-project/skiff/pkg/controller/resourcequota"
	"github.com/skiff-project/skiff/pkg/controller/rootcacert"
	"github.com/skiff-project/skiff/pkg/controller/serviceaccount"
	"github.com/skiff-project/skiff/pkg/controller/statefulset"
	"github.com/skiff-project/skiff/pkg/controller/ttlafterfinished"
)

// Workers per controller, as upstream's --concurrent-*-syncs defaults.
const defaultWorkers = 5

// registry maps each controller's upstream name to its init function. Adding
// a controller is one line here. A function, not a package variable, so the
// set cannot be mutated at run time.
func registry() map[string]initFunc {
	return map[string]initFunc{
		"deployment":               startDeployment,
		"replicaset":               startReplicaSet,
		"replicationcontroller":    startReplicationController,
		"garbagecollector":         startGarbageCollector,
		"namespace":                startNamespace,
		"serviceaccount":           startServiceAccount,
		"nodelifecycle":            startNodeLifecycle,
		"nodeipam":                 startNodeIPAM,
		"daemonset":                startDaemonSet,
		"statefulset":              startStatefulSet,
		"endpoint":                 startEndpoints,
		"endpointslice":            startEndpointSlices,
		"resourcequota":            startResourceQuota,
		"disruption":               startDisruption,
		"job":                      startJob,
		"cronjob":                  startCronJob,
		"ttlafterfinished":         startTTLAfterFinished,
		"horizontalpodautoscaling": startHPA,
		"root-ca-cert-publisher":   startRootCACertPublisher,
		"clusterrole-aggregation":  startClusterRoleAggregation,
	}
}

func startClusterRoleAggregation(_ context.Context, cc *controllerContext) error {
	c, err := clusterroleaggregation.New(cc.Client, cc.Informers.Rbac().V1().ClusterRoles())
	if err != nil {
		return err
	}
	cc.Go("clusterrole-aggregation", func(ctx context.Context) error { return c.Run(ctx, 1) })
	return nil
}

// startRootCACertPublisher publishes the CA that verifies the API server
// (the one the controller manager's own client trusts, as upstream
// without --root-ca-file) into every namespace; without one it does
// nothing.
func startRootCACertPublisher(ctx context.Context, cc *controllerContext) error {
	var ca []byte
	if cfg := cc.Options.Config; cfg != nil {
		ca = cfg.TLSClientConfig.CAData
		if len(ca) == 0 && cfg.TLSClientConfig.CAFile != "" {
			var err error
			if ca, err = os.ReadFile(cfg.TLSClientConfig.CAFile); err != nil {
				return fmt.Errorf("root CA publisher: %w", err)
			}
		}
	}
	if len(ca) == 0 {
		klog.FromContext(ctx).Info("no CA bundle in the API server config; not publishing kube-root-ca.crt", "controller", rootcacert.Name)
		return nil
	}
	inf := cc.Informers
	c, err := rootcacert.New(cc.Client, ca, inf.Core().V1().Namespaces(), inf.Core().V1().ConfigMaps())
	if err != nil {
		return err
	}
	cc.Go("root-ca-cert-publisher", func(ctx context.Context) error { return c.Run(ctx, 1) })
	return nil
}

func startJob(_ context.Context, cc *controllerContext) error {
	inf := cc.Informers
	c, err := job.New(cc.Client, inf.Batch().V1().Jobs(), inf.Core().V1().Pods(), cc.Recorder(job.EventSource), cc.Clock)
	if err != nil {
		return err
	}
	cc.Go("job", func(ctx context.Context) error { return c.Run(ctx, defaultWorkers) })
	return nil
}

func startCronJob(_ context.Context, cc *controllerContext) error {
	inf := cc.Informers
	c, err := cronjob.New(cc.Client, inf.Batch().V1().CronJobs(), inf.Batch().V1().Jobs(), cc.Recorder(cronjob.EventSource), cc.Clock)
	if err != nil {
		return err
	}
	cc.Go("cronjob", func(ctx context.Context) error { return c.Run(ctx, 2) })
	return nil
}

func startTTLAfterFinished(_ context.Context, cc *controllerContext) error {
	c, err := ttlafterfinished.New(cc.Client, cc.Informers.Batch().V1().Jobs(), cc.Clock)
	if err != nil {
		return err
	}
	cc.Go("ttlafterfinished", func(ctx context.Context) error { return c.Run(ctx, 2) })
	return nil
}

func startHPA(_ context.Context, cc *controllerContext) error {
	inf := cc.Informers
	c, err := podautoscaler.New(cc.Client, inf.Autoscaling().V2().HorizontalPodAutoscalers(), inf.Core().V1().Pods(),
		cc.Recorder(podautoscaler.EventSource), cc.Clock)
	if err != nil {
		return err
	}
	cc.Go("horizontalpodautoscaling", func(ctx context.Context) error { return c.Run(ctx, 2) })
	return nil
}

func startDaemonSet(_ context.Context, cc *controllerContext) error {
	inf := cc.Informers
	c, err := daemonset.New(cc.Client, inf.Apps().V1().DaemonSets(), inf.Apps().V1().ControllerRevisions(), inf.Core().V1().Pods(),
		inf.Core().V1().Nodes(), cc.Recorder(daemonset.EventSource), cc.Clock)
	if err != nil {
		return err
	}
	cc.Go("daemonset", func(ctx context.Context) error { return c.Run(ctx, 2) })
	return nil
}

func startStatefulSet(_ context.Context, cc *controllerContext) error {
	inf := cc.Informers
	c, err := statefulset.New(cc.Client, inf.Apps().V1().StatefulSets(), inf.Core().V1().Pods(), inf.Core().V1().PersistentVolumeClaims(),
		inf.Apps().V1().ControllerRevisions(), cc.Recorder(statefulset.EventSource), cc.Clock)
	if err != nil {
		return err
	}
	cc.Go("statefulset", func(ctx context.Context) error { return c.Run(ctx, 5) })
	return nil
}

func startEndpoints(_ context.Context, cc *controllerContext) error {
	inf := cc.Informers
	c, err := endpoints.New(cc.Client, inf.Core().V1().Services(), inf.Core().V1().Pods(), inf.Core().V1().Endpoints(),
		cc.Recorder(endpoints.EndpointsEventSource), cc.Clock)
	if err != nil {
		return err
	}
	cc.Go("endpoint", func(ctx context.Context) error { return c.Run(ctx, defaultWorkers) })
	return nil
}

func startEndpointSlices(_ context.Context, cc *controllerContext) error {
	inf := cc.Informers
	c, err := endpoints.NewSliceController(cc.Client, inf.Core().V1().Services(), inf.Core().V1().Pods(), inf.Discovery().V1().EndpointSlices(),
		cc.Recorder(endpoints.SliceEventSource), cc.Clock)
	if err != nil {
		return err
	}
	cc.Go("endpointslice", func(ctx context.Context) error { return c.Run(ctx, defaultWorkers) })
	return nil
}

func startResourceQuota(_ context.Context, cc *controllerContext) error {
	c, err := resourcequota.New(cc.Client, cc.Informers)
	if err != nil {
		return err
	}
	cc.Go("resourcequota", func(ctx context.Context) error { return c.Run(ctx, 2) })
	return nil
}

func startDisruption(_ context.Context, cc *controllerContext) error {
	inf := cc.Informers
	c, err := disruption.New(cc.Client, inf.Policy().V1().PodDisruptionBudgets(), inf.Core().V1().Pods(), inf.Core().V1().ReplicationControllers(),
		inf.Apps().V1().ReplicaSets(), inf.Apps().V1().Deployments(), inf.Apps().V1().StatefulSets(), cc.Recorder(disruption.EventSource), cc.Clock)
	if err != nil {
		return err
	}
	cc.Go("disruption", func(ctx context.Context) error { return c.Run(ctx, 2) })
	return nil
}

func startGarbageCollector(_ context.Context, cc *controllerContext) error {
	c, err := garbagecollector.New(cc.Client, cc.Metadata, cc.Recorder(garbagecollector.Name), garbagecollector.Options{})
	if err != nil {
		return err
	}
	cc.Go("garbagecollector", func(ctx context.Context) error { c.Run(ctx, 20); return nil })
	return nil
}

func startNamespace(_ context.Context, cc *controllerContext) error {
	c, err := namespace.New(cc.Client, cc.Metadata, cc.Informers, namespace.Options{Clock: cc.Clock})
	if err != nil {
		return err
	}
	cc.Go("namespace", func(ctx context.Context) error { c.Run(ctx, 5); return nil })
	return nil
}

func startServiceAccount(_ context.Context, cc *controllerContext) error {
	c, err := serviceaccount.New(cc.Client, cc.Informers)
	if err != nil {
		return err
	}
	cc.Go("serviceaccount", func(ctx context.Context) error { c.Run(ctx, 2); return nil })
	return nil
}

func startNodeLifecycle(_ context.Context, cc *controllerContext) error {
	o := cc.Options
	c, err := nodelifecycle.New(cc.Client, cc.Informers, cc.Recorder(nodelifecycle.EventSource), nodelifecycle.Options{
		NodeMonitorGracePeriod:              o.NodeMonitorGracePeriod,
		DefaultNotReadyTolerationSeconds:    o.DefaultNotReadyTolerationSeconds,
		DefaultUnreachableTolerationSeconds: o.DefaultUnreachableTolerationSeconds,
		Clock:                               cc.Clock,
	})
	if err != nil {
		return err
	}
	cc.Go("nodelifecycle", func(ctx context.Context) error { c.Run(ctx, defaultWorkers); return nil })
	return nil
}

func startNodeIPAM(_ context.Context, cc *controllerContext) error {
	c, err := nodeipam.New(cc.Client, cc.Informers, cc.Recorder(nodeipam.EventSource), nodeipam.Options{ClusterCIDR: cc.Options.ClusterCIDR})
	if err != nil {
		return err
	}
	cc.Go("nodeipam", func(ctx context.Context) error { c.Run(ctx, 1); return nil })
	return nil
}

func startDeployment(_ context.Context, cc *controllerContext) error {
	inf := cc.Informers
	c, err := deployment.New(cc.Client, inf.Apps().V1().Deployments(), inf.Apps().V1().ReplicaSets(), inf.Core().V1().Pods(),
		cc.Recorder(deployment.EventSource), cc.Clock)
	if err != nil {
		return err
	}
	cc.Go("deployment", func(ctx context.Context) error { return c.Run(ctx, defaultWorkers) })
	return nil
}

func startReplicaSet(_ context.Context, cc *controllerContext) error {
	inf := cc.Informers
	c, err := replicaset.NewReplicaSet(cc.Client, inf.Apps().V1().ReplicaSets(), inf.Core().V1().Pods(),
		cc.Recorder(replicaset.ReplicaSetEventSource), cc.Clock)
	if err != nil {
		return err
	}
	cc.Go("replicaset", func(ctx context.Context) error { return c.Run(ctx, defaultWorkers) })
	return nil
}

func startReplicationController(_ context.Context, cc *controllerContext) error {
	inf := cc.Informers
	c, err := replicaset.NewReplicationController(cc.Client, inf.Core().V1().ReplicationControllers(), inf.Core().V1().Pods(),
		cc.Recorder(replicaset.ReplicationControllerEventSource), cc.Clock)
	if err != nil {
		return err
	}
	cc.Go("replicationcontroller", func(ctx context.Context) error { return c.Run(ctx, defaultWorkers) })
	return nil
}
