// Command podsecurity evaluates Kubernetes workloads against a Pod Security Standards level
// with the upstream evaluator (k8s.io/pod-security-admission/policy), the code the API
// server's PodSecurity admission runs. It reads YAML documents (e.g. `helm template`) on
// stdin and checks the pod spec of every Deployment, StatefulSet, DaemonSet, Job and Pod.
//
//	helm template x deploy/helm/driftline | podsecurity -level restricted
//
// Exit 0: all pods pass; 1: a violation (printed, one per line); 2: bad input.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

type typeMeta struct {
	Kind string `json:"kind"`
}

func podOf(kind string, raw []byte) (*metav1.ObjectMeta, *corev1.PodSpec, error) {
	decode := func(into interface{}) error { return yaml.Unmarshal(raw, into) }
	switch kind {
	case "Deployment":
		var o appsv1.Deployment
		err := decode(&o)
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, err
	case "StatefulSet":
		var o appsv1.StatefulSet
		err := decode(&o)
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, err
	case "DaemonSet":
		var o appsv1.DaemonSet
		err := decode(&o)
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, err
	case "Job":
		var o batchv1.Job
		err := decode(&o)
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, err
	case "Pod":
		var o corev1.Pod
		err := decode(&o)
		return &o.ObjectMeta, &o.Spec, err
	}
	return nil, nil, nil
}

func main() {
	levelName := flag.String("level", "restricted", "baseline or restricted")
	flag.Parse()
	level, err := psapi.ParseLevel(*levelName)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	lv := psapi.LevelVersion{Level: level, Version: psapi.LatestVersion()}
	reader := yaml.NewYAMLReader(bufio.NewReader(os.Stdin))
	pods, failed := 0, false
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		var tm typeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil || tm.Kind == "" {
			continue
		}
		meta, spec, err := podOf(tm.Kind, doc)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", tm.Kind, err)
			os.Exit(2)
		}
		if spec == nil {
			continue
		}
		pods++
		for _, result := range evaluator.EvaluatePod(lv, meta, spec) {
			if !result.Allowed {
				failed = true
				fmt.Printf("%s: %s: %s\n", tm.Kind, result.ForbiddenReason, result.ForbiddenDetail)
			}
		}
	}
	if pods == 0 {
		fmt.Fprintln(os.Stderr, "no pod spec in the input")
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
	fmt.Printf("%d pod spec(s) pass Pod Security %q\n", pods, *levelName)
}
