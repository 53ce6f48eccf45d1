// Command libcni-driver runs a CNI network configuration list through libcni exactly as a container
// runtime does: the same request derivation (name, cniVersion, prevResult, runtimeConfig from
// capability args), the same result parsing (a malformed result is rejected here, as containerd
// would reject it), the same result cache that CHECK and DEL read, reverse-order DEL.
//
// It exists because Debian ships libcni (golang-github-appc-cni-dev 1.1.2) but not cnitool. It is
// built offline by tests/libcni.py (GO111MODULE=off, GOPATH including /usr/share/gocode).
//
// Usage:
//
//	libcni-driver [flags] add|check|del|cached|validate
//	libcni-driver [flags] version <plugin-type>
//
// add prints the result JSON on stdout; cached prints the cached result; validate prints the
// capabilities the list uses; version prints the plugin's VERSION answer. On failure the driver
// exits 1 with the error on stderr and, when the plugin returned a CNI error, that error's JSON
// ({"code", "msg", "details"}) on stdout. Usage errors exit 2.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

type options struct {
	conf        string
	name        string
	cniPath     string
	cacheDir    string
	containerID string
	netns       string
	ifname      string
	args        string
	capArgs     string
	timeout     time.Duration
}

func parseFlags() (options, []string) {
	var o options
	flag.StringVar(&o.conf, "conf", "", "conflist file, or a directory of conflists (then -name picks one)")
	flag.StringVar(&o.name, "name", "", "network name to load from a -conf directory")
	flag.StringVar(&o.cniPath, "cni-path", os.Getenv("CNI_PATH"), "plugin directories, ':'-separated")
	flag.StringVar(&o.cacheDir, "cache-dir", "", "libcni result cache directory")
	flag.StringVar(&o.containerID, "container-id", "", "CNI_CONTAINERID")
	flag.StringVar(&o.netns, "netns", "", "CNI_NETNS (path)")
	flag.StringVar(&o.ifname, "ifname", "eth0", "CNI_IFNAME")
	flag.StringVar(&o.args, "args", "", "CNI_ARGS as K=V;K=V (runtimes send IgnoreUnknown=1;K8S_POD_...)")
	flag.StringVar(&o.capArgs, "cap-args", "", `capability args as JSON, e.g. {"portMappings":[...]}`)
	flag.DurationVar(&o.timeout, "timeout", 60*time.Second, "deadline for the whole operation")
	flag.Parse()
	return o, flag.Args()
}

func loadList(o options) (*libcni.NetworkConfigList, error) {
	info, err := os.Stat(o.conf)
	if err != nil {
		return nil, err
	}
	if info.IsDir() {
		if o.name == "" {
			return nil, fmt.Errorf("-conf %s is a directory: -name is required", o.conf)
		}
		return libcni.LoadConfList(o.conf, o.name)
	}
	return libcni.ConfListFromFile(o.conf)
}

func runtimeConf(o options) (*libcni.RuntimeConf, error) {
	rt := &libcni.RuntimeConf{ContainerID: o.containerID, NetNS: o.netns, IfName: o.ifname}
	for _, pair := range strings.Split(o.args, ";") {
		if pair == "" {
			continue
		}
		kv := strings.SplitN(pair, "=", 2)
		if len(kv) != 2 {
			return nil, fmt.Errorf("-args: %q is not K=V", pair)
		}
		rt.Args = append(rt.Args, [2]string{kv[0], kv[1]})
	}
	if o.capArgs != "" {
		if err := json.Unmarshal([]byte(o.capArgs), &rt.CapabilityArgs); err != nil {
			return nil, fmt.Errorf("-cap-args: %w", err)
		}
	}
	return rt, nil
}

func printJSON(v interface{}) error {
	out, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(out))
	return err
}

func run(o options, rest []string) error {
	if len(rest) == 0 {
		return errUsage
	}
	var paths []string
	for _, p := range filepath.SplitList(o.cniPath) {
		if p != "" {
			paths = append(paths, p)
		}
	}
	cni := libcni.NewCNIConfigWithCacheDir(paths, o.cacheDir, nil)
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()

	if rest[0] == "version" {
		if len(rest) != 2 {
			return errUsage
		}
		info, err := cni.GetVersionInfo(ctx, rest[1])
		if err != nil {
			return err
		}
		return printJSON(map[string]interface{}{"supportedVersions": info.SupportedVersions()})
	}

	list, err := loadList(o)
	if err != nil {
		return err
	}
	rt, err := runtimeConf(o)
	if err != nil {
		return err
	}
	switch rest[0] {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			return err
		}
		return printJSON(result)
	case "check":
		return cni.CheckNetworkList(ctx, list, rt)
	case "del":
		return cni.DelNetworkList(ctx, list, rt)
	case "cached":
		result, err := cni.GetNetworkListCachedResult(list, rt)
		if err != nil {
			return err
		}
		return printJSON(result)
	case "validate":
		caps, err := cni.ValidateNetworkList(ctx, list)
		if err != nil {
			return err
		}
		return printJSON(map[string]interface{}{"capabilities": caps})
	}
	return errUsage
}

var errUsage = errors.New("usage: libcni-driver [flags] add|check|del|cached|validate | version <plugin-type>")

func main() {
	o, rest := parseFlags()
	err := run(o, rest)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "error:", err)
	if errors.Is(err, errUsage) {
		os.Exit(2)
	}
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		_ = printJSON(cniErr)
	}
	os.Exit(1)
}
