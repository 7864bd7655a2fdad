package controllermanager

import (
	"context"

	"github.com/skiff-project/skiff/pkg/controller/deployment"
	"github.com/skiff-project/skiff/pkg/controller/replicaset"
)

// Workers per controller, as upstream's --concurrent-*-syncs defaults.
const defaultWorkers = 5

// registry maps each controller's upstream name to its init function. Adding
// a controller is one line here. A function, not a package variable, so the
// set cannot be mutated at run time.
func registry() map[string]initFunc {
	return map[string]initFunc{
		"deployment":            startDeployment,
		"replicaset":            startReplicaSet,
		"replicationcontroller": startReplicationController,
	}
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
