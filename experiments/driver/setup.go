package driver

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/churnlab/churnlab/experiments/controlplane"
	"github.com/churnlab/churnlab/experiments/scenario"
)

// maxObjects caps the objects Setup makes of one resource, to keep a run
// within what one machine's API server and etcd hold.
const maxObjects = 5000

// flowSchemaPrecedence puts the run's flow schemas before the defaults'
// service-accounts (9000) and global-default (9900), after the system's.
const flowSchemaPrecedence = 500

// Setup makes what the controllers need on the cluster, then checks that
// each identity's requests land in its priority level.
func (d *Driver) Setup(ctx context.Context) error {
	if !d.opts.Scenario.Cluster.APIServer.PriorityAndFairness {
		return fmt.Errorf("cluster.apiServer.priorityAndFairness is false, but the live API server runs with it on; play that scenario in the sim only")
	}
	for _, pl := range d.opts.Scenario.Cluster.APIServer.ExtraPriorityLevels {
		if err := d.priorityLevel(ctx, pl); err != nil {
			return fmt.Errorf("priority level %s: %w", pl.Name, err)
		}
	}
	for _, c := range d.controllers {
		if err := d.identity(ctx, c); err != nil {
			return fmt.Errorf("controller %s: %w", c.spec.Name, err)
		}
	}
	if err := d.makeObjects(ctx); err != nil {
		return err
	}
	for _, c := range d.controllers {
		var got string
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
			var err error
			got, err = controlplane.PriorityLevelOf(ctx, d.opts.Admin, c.config)
			return err == nil && got == c.level, nil
		})
		if err != nil {
			return fmt.Errorf("controller %s: its requests land in priority level %q, not %q, after 15 s", c.spec.Name, got, c.level)
		}
	}
	return nil
}

// priorityLevel creates pl, or replaces the spec of the default of its
// name with auto-update off, as an administrator edits one.
func (d *Driver) priorityLevel(ctx context.Context, pl scenario.PriorityLevel) error {
	spec := flowcontrolv1.PriorityLevelConfigurationSpec{Type: flowcontrolv1.PriorityLevelEnablementExempt,
		Exempt: &flowcontrolv1.ExemptPriorityLevelConfiguration{}}
	if !pl.Exempt {
		limited := &flowcontrolv1.LimitedPriorityLevelConfiguration{
			NominalConcurrencyShares: ptr.To(int32(pl.Shares)),
			LendablePercent:          ptr.To(int32(pl.LendablePercent)),
			LimitResponse:            flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeReject},
		}
		if pl.BorrowingLimitPercent != nil {
			limited.BorrowingLimitPercent = ptr.To(int32(*pl.BorrowingLimitPercent))
		}
		if pl.Queues > 0 {
			limited.LimitResponse = flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeQueue,
				Queuing: &flowcontrolv1.QueuingConfiguration{Queues: int32(pl.Queues), HandSize: int32(pl.HandSize), QueueLengthLimit: int32(pl.QueueLengthLimit)}}
		}
		spec = flowcontrolv1.PriorityLevelConfigurationSpec{Type: flowcontrolv1.PriorityLevelEnablementLimited, Limited: limited}
	}
	levels := d.admin.FlowcontrolV1().PriorityLevelConfigurations()
	existing, err := levels.Get(ctx, pl.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = levels.Create(ctx, &flowcontrolv1.PriorityLevelConfiguration{ObjectMeta: metav1.ObjectMeta{Name: pl.Name}, Spec: spec}, metav1.CreateOptions{})
		return err
	case err != nil:
		return err
	}
	metav1.SetMetaDataAnnotation(&existing.ObjectMeta, flowcontrolv1.AutoUpdateAnnotationKey, "false")
	existing.Spec = spec
	_, err = levels.Update(ctx, existing, metav1.UpdateOptions{})
	return err
}

// identity gives c a service account allowed the resources it uses, a
// flow schema to its level, and a client config with its token, QPS and
// burst.
func (d *Driver) identity(ctx context.Context, c *controller) error {
	ns, name := d.opts.Namespace, "churnlab-"+c.spec.Name
	if _, err := d.admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	var rules []rbacv1.PolicyRule
	for _, t := range c.spec.Triggers {
		for _, res := range append([]string{t.Watch}, requestResources(t)...) {
			if res == "" {
				continue
			}
			r, _ := resourceOf(res)
			rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{r.gvr.Group}, Resources: []string{r.gvr.Resource}, Verbs: []string{"*"}})
		}
	}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name + "-" + ns}, Rules: rules}
	if _, err := d.admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}}}
	if _, err := d.admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	level, distinguisher := d.opts.Scenario.LevelOf(c.spec)
	fs := &flowcontrolv1.FlowSchema{ObjectMeta: metav1.ObjectMeta{Name: role.Name}, Spec: flowcontrolv1.FlowSchemaSpec{
		PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: level},
		MatchingPrecedence:         flowSchemaPrecedence,
		Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
			Subjects: []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindServiceAccount,
				ServiceAccount: &flowcontrolv1.ServiceAccountSubject{Namespace: ns, Name: name}}},
			ResourceRules: []flowcontrolv1.ResourcePolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"},
				ClusterScope: true, Namespaces: []string{"*"}}},
			NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
		}},
	}}
	switch distinguisher {
	case "byUser":
		fs.Spec.DistinguisherMethod = &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType}
	case "byNamespace":
		fs.Spec.DistinguisherMethod = &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByNamespaceType}
	}
	if level == "exempt" {
		fs.Spec.DistinguisherMethod = nil
	}
	if _, err := d.admin.FlowcontrolV1().FlowSchemas().Create(ctx, fs, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	request := tokenRequest
	token, err := d.admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &request, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token of service account %s: %w", name, err)
	}
	cfg := rest.AnonymousClientConfig(d.opts.Admin)
	cfg.BearerToken = token.Status.Token
	cfg.QPS, cfg.Burst = float32(c.spec.QPS.PerSecond()), c.spec.Burst
	c.config = cfg
	return nil
}

// tokenRequest asks for a token that outlives any run.
var tokenRequest = authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(24 * 3600))}}

func requestResources(t scenario.Trigger) []string {
	var out []string
	for _, r := range t.Requests {
		out = append(out, r.Resource)
	}
	return out
}

// makeObjects makes the CRDs of custom resources and, of each resource
// but pods and nodes (the run's own), as many objects as the largest
// request of it touches (a GET's or write's repeats each their own), each
// as large as the largest any request declares. A LIST returns them all.
func (d *Driver) makeObjects(ctx context.Context) error {
	size := scenario.Size{Pods: d.opts.Scenario.Cluster.Pods, Nodes: d.opts.Scenario.Cluster.Nodes}
	want := map[string]scenario.Request{} // with the largest size
	counts := map[string]int{}
	for _, c := range d.controllers {
		for _, t := range c.spec.Triggers {
			for _, q := range t.Requests {
				if q.Resource == "pods" || q.Resource == "nodes" || q.Verb == "create" {
					continue
				}
				n := q.Objects.Eval(size)
				if q.Verb != "list" && q.Verb != "watch" {
					n *= q.Repeat // each repeat touches its own objects
				}
				counts[q.Resource] = max(counts[q.Resource], n, 1)
				if w, ok := want[q.Resource]; !ok || q.Size > w.Size {
					want[q.Resource] = q
				}
			}
		}
	}
	admin, err := dynamic.NewForConfig(d.opts.Admin)
	if err != nil {
		return err
	}
	d.objects = map[string]int{}
	for _, name := range sortedKeys(want) {
		q := want[name]
		res, _ := resourceOf(name)
		if _, builtin := builtins[name]; !builtin {
			if err := d.crd(ctx, admin, res); err != nil {
				return fmt.Errorf("CRD %s: %w", name, err)
			}
		}
		n := counts[name]
		if n > maxObjects {
			d.opts.Note("%s: %d objects declared; the run makes %d", name, n, maxObjects)
			n = maxObjects
		}
		in := admin.Resource(res.gvr).Namespace(d.opts.Namespace)
		for i := range n {
			if _, err := in.Create(ctx, d.newObject(q, res, objectName(name, i)), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("making %s %d of %d: %w", name, i+1, n, err)
			}
		}
		d.objects[name] = n
	}
	return nil
}

// crd makes the CustomResourceDefinition of res, namespaced, served at
// v1 with any fields, and waits until it is established.
func (d *Driver) crd(ctx context.Context, admin dynamic.Interface, res resource) error {
	kind := strings.ToUpper(res.gvr.Resource[:1]) + strings.TrimSuffix(res.gvr.Resource[1:], "s")
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": res.gvr.Resource + "." + res.gvr.Group},
		"spec": map[string]any{
			"group": res.gvr.Group,
			"scope": "Namespaced",
			"names": map[string]any{"plural": res.gvr.Resource, "singular": strings.ToLower(kind), "kind": kind, "listKind": kind + "List"},
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
			}},
		},
	}}
	crds := admin.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := crds.Get(ctx, obj.GetName(), metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		conditions, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, c := range conditions {
			if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
}

func objectName(resource string, i int) string {
	short, _, _ := strings.Cut(resource, ".")
	return fmt.Sprintf("churnlab-%s-%d", short, i)
}

// newObject is an object of q's resource whose payload is q's object
// size: named name, or generated when name is "".
func (d *Driver) newObject(q scenario.Request, res resource, name string) *unstructured.Unstructured {
	payload := strings.Repeat("x", int(q.Size))
	obj := &unstructured.Unstructured{Object: map[string]any{}}
	obj.SetAPIVersion(res.gvr.GroupVersion().String())
	if name == "" {
		obj.SetGenerateName("churnlab-")
	} else {
		obj.SetName(name)
	}
	obj.SetNamespace(d.opts.Namespace)
	switch q.Resource {
	case "configmaps":
		obj.SetKind("ConfigMap")
		obj.Object["data"] = map[string]any{"payload": payload}
	case "secrets":
		obj.SetKind("Secret")
		obj.Object["data"] = map[string]any{"payload": base64.StdEncoding.EncodeToString([]byte(payload))}
	case "events":
		obj.SetKind("Event")
		obj.Object["involvedObject"] = map[string]any{"kind": "Namespace", "name": d.opts.Namespace}
		obj.Object["message"] = payload
	case "leases":
		obj.SetKind("Lease")
		obj.Object["spec"] = map[string]any{"holderIdentity": payload}
	case "services":
		obj.SetKind("Service")
		obj.Object["spec"] = map[string]any{"ports": []any{map[string]any{"port": int64(80)}}}
		obj.SetAnnotations(map[string]string{"churnlab.io/payload": payload})
	case "endpoints":
		obj.SetKind("Endpoints")
		obj.SetAnnotations(map[string]string{"churnlab.io/payload": payload})
	default: // a custom resource
		kind := strings.ToUpper(res.gvr.Resource[:1]) + strings.TrimSuffix(res.gvr.Resource[1:], "s")
		obj.SetKind(kind)
		obj.Object["spec"] = map[string]any{"payload": payload}
	}
	return obj
}
