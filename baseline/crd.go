package baseline

import (
	"context"
	"errors"
	"fmt"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The VeltrixConfig resource.
var (
	Group    = "veltrix.churnlab.io"
	Version  = "v1alpha1"
	Resource = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "veltrixconfigs"}
	Kind     = "VeltrixConfig"
)

// crd returns the VeltrixConfig CustomResourceDefinition: spec.hunt names
// the hunt an object configures, spec.data holds a piece of the bundle.
func crd() *apiextensionsv1.CustomResourceDefinition {
	str := apiextensionsv1.JSONSchemaProps{Type: "string"}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: Resource.Resource + "." + Group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: Group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Plural: Resource.Resource, Singular: "veltrixconfig", Kind: Kind, ListKind: Kind + "List",
			},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: Version, Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", Required: []string{"data"}, Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"hunt": str, "data": str,
						}},
					},
				}},
			}},
		},
	}
}

// Install sets up what the operator needs, as the admin: the VeltrixConfig
// CRD (waiting until it is served), and RBAC that lets OperatorUser read
// pods and configs and patch pods, and nothing else.
func Install(ctx context.Context, admin *rest.Config, user string) error {
	ext, err := apiextensionsclient.NewForConfig(admin)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd(), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("baseline: creating the VeltrixConfig CRD: %w", err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd().Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("baseline: the VeltrixConfig CRD was not established: %w", err)
	}
	kube, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: operatorRole},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "patch"}},
			{APIGroups: []string{Group}, Resources: []string{Resource.Resource}, Verbs: []string{"get", "list", "watch"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: operatorRole},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if _, err := kube.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("baseline: %w", err)
	}
	_, err = kube.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// Left by an earlier install, perhaps for another identity: bind this one.
		_, err = kube.RbacV1().ClusterRoleBindings().Update(ctx, binding, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("baseline: binding the operator's role to %s: %w", user, err)
	}
	return nil
}

// Uninstall removes what Install made cluster-wide: the CRD (and with it
// every VeltrixConfig object) and the operator's RBAC. What is already
// gone is not an error.
func Uninstall(ctx context.Context, admin *rest.Config) error {
	ext, err := apiextensionsclient.NewForConfig(admin)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	kube, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	gone := func(what string, err error) error {
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("baseline: deleting %s: %w", what, err)
		}
		return nil
	}
	return errors.Join(
		gone("the VeltrixConfig CRD", ext.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, crd().Name, metav1.DeleteOptions{})),
		gone("the operator's ClusterRoleBinding", kube.RbacV1().ClusterRoleBindings().Delete(ctx, operatorRole, metav1.DeleteOptions{})),
		gone("the operator's ClusterRole", kube.RbacV1().ClusterRoles().Delete(ctx, operatorRole, metav1.DeleteOptions{})))
}

// operatorRole names the operator's ClusterRole and its binding.
const operatorRole = "veltrix-operator"

// MaxObjectBytes is the most config one VeltrixConfig object may hold:
// etcd refuses requests over 1.5 MiB, and the object needs room for its
// metadata. This is why a 2 MB bundle has to be many objects.
const MaxObjectBytes = 1536*1024 - 16*1024

// WriteConfig stores size bytes of config as objects VeltrixConfig objects
// in namespace (the last one takes the remainder), as the admin would.
func WriteConfig(ctx context.Context, admin *rest.Config, namespace string, size, objects int) error {
	if objects < 1 || size < objects {
		return fmt.Errorf("baseline: cannot split %d bytes into %d config objects", size, objects)
	}
	if per := (size + objects - 1) / objects; per > MaxObjectBytes {
		return fmt.Errorf("baseline: %d bytes in %d objects is %d bytes each, over the %d etcd allows per object; use at least %d objects",
			size, objects, per, MaxObjectBytes, (size+MaxObjectBytes-1)/MaxObjectBytes)
	}
	dyn, err := dynamic.NewForConfig(admin)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	chunk := size / objects
	for i := range objects {
		n := chunk
		if i == objects-1 {
			n = size - chunk*(objects-1)
		}
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": Group + "/" + Version,
			"kind":       Kind,
			"metadata":   map[string]any{"name": fmt.Sprintf("config-%04d", i), "namespace": namespace},
			"spec":       map[string]any{"hunt": fmt.Sprintf("hunt-%d", i%20), "data": filler(n, i)},
		}}
		if _, err := dyn.Resource(Resource).Namespace(namespace).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("baseline: writing config object %d of %d: %w", i+1, objects, err)
		}
	}
	return nil
}

// filler is n bytes of printable, not very compressible config text.
func filler(n, seed int) string {
	b := make([]byte, n)
	x := uint32(seed*2654435761 + 1)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = 'a' + byte(x%26)
	}
	return string(b)
}
