// Command keyring answers, for a Pod read from the API server, which
// credentials the kubelet would send when pulling a given image: it reads the
// Pod's imagePullSecrets the way the kubelet does (getPullSecretsForPod: by
// name from the Pod's namespace, a missing one skipped) and runs the kubelet's
// own keyring over them (k8s.io/kubernetes pkg/credentialprovider and its
// secrets package, the calls of the image manager's
// makeLookupPullCredentialsFunc). The node's own keyring (config.json files
// on the node, credential provider plugins) is left out: the clusters
// ecr-creds-refresher serves have none, and the test machine's must not leak in.
//
// It prints one JSON object; the tests read it to prove that the Secrets the
// operator writes are the ones a real kubelet would use.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/kubernetes/pkg/credentialprovider"
	credentialprovidersecrets "k8s.io/kubernetes/pkg/credentialprovider/secrets"
	"k8s.io/kubernetes/pkg/util/parsers"
)

type secretRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
}

type credential struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// Hash is the kubelet's hash of the credential, recorded with each pulled
	// image when KubeletEnsureSecretPulledImages (KEP-2535) is on.
	Hash   string     `json:"hash,omitempty"`
	Secret *secretRef `json:"secret,omitempty"`
}

type answer struct {
	Pod   string `json:"pod"`
	Image string `json:"image"`
	// Repository is the image name the keyring is asked about (tag and
	// digest removed, docker.io names normalised), as the kubelet asks.
	Repository string `json:"repository"`
	// PullSecrets are the Pod's imagePullSecrets the kubelet could read;
	// MissingPullSecrets those it could not (it warns and goes on).
	PullSecrets        []secretRef  `json:"pullSecrets"`
	MissingPullSecrets []string     `json:"missingPullSecrets"`
	Credentials        []credential `json:"credentials"`
}

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the API server to read the Pod from")
	namespace := flag.String("namespace", "default", "the Pod's namespace")
	pod := flag.String("pod", "", "the Pod's name (required)")
	image := flag.String("image", "", "the image to resolve credentials for (default: the Pod's first container's image)")
	flag.Parse()
	if *pod == "" {
		fail(fmt.Errorf("--pod is required"))
	}
	out, err := resolve(context.Background(), *kubeconfig, *namespace, *pod, *image)
	if err != nil {
		fail(err)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fail(err)
	}
}

func resolve(ctx context.Context, kubeconfig, namespace, podName, image string) (*answer, error) {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("failed to load kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return nil, fmt.Errorf("failed to create client: %w", err)
	}
	pod, err := client.CoreV1().Pods(namespace).Get(ctx, podName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("failed to read pod %s/%s: %w", namespace, podName, err)
	}
	if image == "" {
		if len(pod.Spec.Containers) == 0 {
			return nil, fmt.Errorf("failed to pick an image: pod %s/%s has no containers", namespace, podName)
		}
		image = pod.Spec.Containers[0].Image
	}

	out := &answer{Pod: namespace + "/" + podName, Image: image, PullSecrets: []secretRef{}, MissingPullSecrets: []string{}, Credentials: []credential{}}
	// kubelet_pods.go getPullSecretsForPod
	pullSecrets := []v1.Secret{}
	for _, ref := range pod.Spec.ImagePullSecrets {
		if ref.Name == "" {
			continue
		}
		secret, err := client.CoreV1().Secrets(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if !apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("failed to read pull secret %s/%s: %w", namespace, ref.Name, err)
			}
			out.MissingPullSecrets = append(out.MissingPullSecrets, ref.Name)
			continue
		}
		pullSecrets = append(pullSecrets, *secret)
		out.PullSecrets = append(out.PullSecrets, secretRef{Namespace: secret.Namespace, Name: secret.Name, UID: string(secret.UID)})
	}

	// images/image_manager.go makeLookupPullCredentialsFunc, without the
	// node keyring and the external credential provider plugins.
	repoToPull, _, _, err := parsers.ParseImageName(image)
	if err != nil {
		return nil, fmt.Errorf("failed to parse image %q: %w", image, err)
	}
	out.Repository = repoToPull
	keyring, err := credentialprovidersecrets.MakeDockerKeyring(pullSecrets, credentialprovider.UnionDockerKeyring{})
	if err != nil {
		return nil, fmt.Errorf("failed to build keyring from pull secrets: %w", err)
	}
	found, _ := keyring.Lookup(repoToPull)
	for _, c := range found {
		cred := credential{Username: c.Username, Password: c.Password, Hash: c.AuthConfigHash}
		if c.Source != nil && c.Source.Secret != nil {
			cred.Secret = &secretRef{Namespace: c.Source.Secret.Namespace, Name: c.Source.Secret.Name, UID: c.Source.Secret.UID}
		}
		out.Credentials = append(out.Credentials, cred)
	}
	return out, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "keyring:", err)
	os.Exit(1)
}
