// Command pod_security judges pod specs with the Kubernetes Pod Security
// Admission library itself (k8s.io/pod-security-admission), the code the API
// server runs for `pod-security.kubernetes.io/enforce` labels.
//
// Input on stdin: a JSON list of {"name", "metadata", "spec"} (pod template
// metadata and spec). It prints each violation and exits 1 if any pod fails
// the "restricted" level at the latest version, 0 otherwise.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

type pod struct {
	Name     string          `json:"name"`
	Metadata json.RawMessage `json:"metadata"`
	Spec     json.RawMessage `json:"spec"`
}

func main() {
	var pods []pod
	if err := json.NewDecoder(os.Stdin).Decode(&pods); err != nil {
		fmt.Fprintln(os.Stderr, "reading pods:", err)
		os.Exit(2)
	}
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "building the evaluator:", err)
		os.Exit(2)
	}
	level := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	violations := 0
	for _, p := range pods {
		var meta metav1.ObjectMeta
		var spec corev1.PodSpec
		if err := json.Unmarshal(p.Metadata, &meta); err != nil {
			fmt.Fprintf(os.Stderr, "%s: metadata: %v\n", p.Name, err)
			os.Exit(2)
		}
		if err := json.Unmarshal(p.Spec, &spec); err != nil {
			fmt.Fprintf(os.Stderr, "%s: spec: %v\n", p.Name, err)
			os.Exit(2)
		}
		for _, result := range evaluator.EvaluatePod(level, &meta, &spec) {
			if !result.Allowed {
				violations++
				fmt.Printf("%s: %s: %s\n", p.Name, result.ForbiddenReason, result.ForbiddenDetail)
			}
		}
	}
	if violations > 0 {
		os.Exit(1)
	}
	fmt.Printf("%d pod(s) pass Pod Security Standards restricted (latest)\n", len(pods))
}
