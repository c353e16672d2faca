// Command pulumi-language-python is the e2e tier's stand-in for Pulumi's Python language host. It
// serves exactly what the engine (pkg/v3 v3.274.1) asks of a language host to load a Python policy
// pack or a Python component provider (a plugin directory), and nothing else.
//
// Why it exists: the real host's Go module is refused by the module proxy here, and without a host
// `pulumi preview --policy-pack DIR` cannot start a pack whose PulumiPolicy.yaml says
// `runtime: python`. Python programs do not need it: the e2e tier runs them as Automation API inline
// programs, for which the Python SDK serves the language runtime itself.
//
// What the engine does with it (pkg/v3/resource/plugin, host/host.go):
//
//  1. It finds this binary as the bundled `python` language plugin (next to the running `pulumi`,
//     or on PATH), starts it with the engine's address as the last argument, reads one line with
//     the port from stdout and dials it (no Handshake on this path).
//  2. GetPluginInfo: the host caches the runtime with its version.
//  3. RunPlugin(kind "analyzer", info = the pack directory and its runtime.options, args = the
//     engine's logging/tracing flags then its address, env = the CLI's environment, pwd = the
//     program's directory, Pulumi.yaml's `main`). The host starts, in pwd,
//     `python -u -m pulumi.policy ARGS... PACKDIR` (the Python SDK's policy entry point, the command
//     the old pulumi-analyzer-policy-python shim ran: it runs the pack's __main__.py, whose
//     PolicyPack serves the Analyzer service and writes its port to stdout) and streams the
//     process's stdout and stderr back. The engine reads the analyzer's port from the first stdout
//     line and forwards the rest, and stderr, to its diagnostics. `-u` matters: pulumi_policy writes
//     the port without flushing, and without PYTHONUNBUFFERED the engine then waits forever.
//  4. Cancel, when the run ends: the engine skips it when it is Unimplemented.
//
// The engine passes neither the stack nor its config in that environment (PULUMI_STACK,
// PULUMI_PROJECT, PULUMI_CONFIG are absent unless the CLI's own environment has them): it sends
// them to the analyzer in the ConfigureStack call. The environment is forwarded as given.
//
// The interpreter: `runtime.options.virtualenv` of PulumiPolicy.yaml (relative to the pack
// directory) if set, else $PULUMI_PYTHON_CMD, else `python3`, both looked up on PATH. Unlike the
// real host, this one does not create the virtualenv or install the pack's requirements.
//
// RunPlugin(kind "resource") runs a source-based component provider, a directory holding
// PulumiPlugin.yaml and __main__.py (modelplane's components/, served by the Python SDK's component
// provider host), as the real host runs a bare plugin directory: `python -u DIR ARGS...` in pwd, the
// interpreter chosen the same way from PulumiPlugin.yaml's runtime.options; the provider writes its
// port as the first stdout line, as a pack does. `pulumi package get-schema DIR` and a program's
// `packages:` entry for DIR load it this way.
//
// InstallDependencies checks the interpreter and installs nothing. Every other LanguageRuntime method
// answers Unimplemented, and RunPlugin of any other plugin kind
// fails: this host runs policy packs and component providers only. Linux and macOS only
// (`bin/python` in a virtualenv).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

func main() {
	// The engine passes --tracing when it traces; accepted so that such runs start, not honoured.
	flag.String("tracing", "", "Zipkin-compatible tracing endpoint (accepted, ignored)")
	// A plugin loader (pulumi-yaml's, loading a package from its directory) starts the host with the
	// plugin's root and runtime.options as flags (-root=DIR -toolchain=pip -virtualenv=../.venv);
	// RunPlugin gets the same in its request.
	flag.String("root", "", "the plugin's directory (accepted, ignored: RunPlugin reads it)")
	flag.String("toolchain", "", "runtime.options.toolchain (accepted, ignored: RunPlugin reads the options)")
	flag.String("virtualenv", "", "runtime.options.virtualenv (accepted, ignored: RunPlugin reads the options)")
	flag.String("typechecker", "", "runtime.options.typechecker (accepted, ignored)")
	// -v and --logtostderr are glog's flags, registered by the logging package.
	flag.Parse()
	logging.InitLogging(false, 0, false)

	var engineAddress string
	if args := flag.Args(); len(args) > 0 {
		engineAddress = args[len(args)-1]
	}

	// Stop on SIGINT/SIGTERM and when the engine stops answering health checks, so that neither this
	// process nor a pack it started outlives a CLI that died without closing its plugins. (The real
	// host checks every 5 minutes; a check is one local gRPC call, and e2e machines are shared.)
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if engineAddress != "" {
		if err := rpcutil.Healthcheck(ctx, engineAddress, 10*time.Second, cancel); err != nil {
			cmdutil.Exit(fmt.Errorf("could not start the health check of the engine: %w", err))
		}
	}
	stop := make(chan bool)
	go func() {
		<-ctx.Done()
		close(stop)
	}()

	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, &host{shutdown: ctx})
			return nil
		},
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start the language host's gRPC server: %w", err))
	}
	// The one line the engine reads to find us.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host stopped serving: %w", err))
	}
}

// host serves the LanguageRuntime service: GetPluginInfo and RunPlugin of policy packs and component providers.
type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	// shutdown is done when this process is asked to stop; running packs are killed then.
	shutdown context.Context
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// InstallDependencies is what the CLI asks before it runs a plugin directory (`pulumi package
// get-schema DIR`, `pulumi package add DIR`). The real host creates the virtualenv and installs the
// requirements; this one installs nothing: it checks that the interpreter RunPlugin would use is
// there, so that a missing virtualenv is reported before the plugin is started.
func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse]) error {
	info := req.GetInfo()
	if _, _, err := interpreter(info.GetRootDirectory(), info.GetOptions()); err != nil {
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return nil
}

// RunPlugin starts a policy pack or a component provider and streams its output until it exits or the
// engine cancels the call.
func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer) error {
	kind := req.GetKind()
	if kind != string(apitype.AnalyzerPlugin) && kind != string(apitype.ResourcePlugin) {
		return status.Errorf(codes.Unimplemented,
			"this pulumi-language-python (modelplane's e2e stand-in) runs policy packs and component "+
				"providers only, not %q plugins", kind)
	}
	info := req.GetInfo()
	packDir := info.GetProgramDirectory()
	python, venv, err := interpreter(info.GetRootDirectory(), info.GetOptions())
	if err != nil {
		return status.Error(codes.FailedPrecondition, err.Error())
	}

	var args []string
	if kind == string(apitype.AnalyzerPlugin) {
		// The engine's flags and address, then the pack: pulumi.policy's arguments are
		// `engineAddress program` plus optional --tracing/--logtostderr/-v.
		args = append([]string{"-u", "-m", "pulumi.policy"}, req.GetArgs()...)
		args = append(args, packDir)
	} else {
		// The directory's __main__.py, then the engine's address and flags (the provider's argv).
		args = append([]string{"-u", packDir}, req.GetArgs()...)
	}

	// Killed when the engine cancels the stream (it closes the analyzer) or this host stops.
	ctx, cancel := context.WithCancel(server.Context())
	defer cancel()
	defer context.AfterFunc(h.shutdown, cancel)()

	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Dir = req.GetPwd()
	cmd.Env = environment(req.GetEnv(), venv)
	streams := &outputStreams{server: server}
	cmd.Stdout = streams.writer(false)
	cmd.Stderr = streams.writer(true)
	logging.V(5).Infof("RunPlugin: %s (in %s)", cmd.String(), cmd.Dir)

	var code int32
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return status.Errorf(codes.FailedPrecondition, "could not start plugin %s with %s: %v",
				packDir, python, err)
		}
		code = int32(exit.ExitCode()) // -1 when killed by a signal
	}
	return server.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: code}})
}

// interpreter picks the Python that runs a pack, and the virtualenv it belongs to ("" for none).
func interpreter(packDir string, options *structpb.Struct) (python, venv string, err error) {
	if value, ok := options.GetFields()["virtualenv"]; ok {
		venv = value.GetStringValue()
		if venv == "" {
			return "", "", errors.New("runtime.options.virtualenv (PulumiPolicy.yaml, PulumiPlugin.yaml) must be a " +
				"non-empty string")
		}
		if !filepath.IsAbs(venv) {
			venv = filepath.Join(packDir, venv)
		}
		python = filepath.Join(venv, "bin", "python")
		if stat, err := os.Stat(python); err != nil || stat.Mode()&0o111 == 0 {
			return "", "", fmt.Errorf("the plugin's virtualenv %s (runtime.options.virtualenv in "+
				"PulumiPolicy.yaml or PulumiPlugin.yaml) has no bin/python: create it (python3 -m venv %s) and "+
				"install the plugin's requirements into it", venv, venv)
		}
		return python, venv, nil
	}
	name, source := os.Getenv("PULUMI_PYTHON_CMD"), "PULUMI_PYTHON_CMD"
	if name == "" {
		name, source = "python3", "the default"
	}
	python, err = exec.LookPath(name)
	if err != nil {
		return "", "", fmt.Errorf("no Python interpreter to run the plugin: %s (%s) is not on PATH", name, source)
	}
	return python, "", nil
}

// environment is the engine's environment for the pack, with the virtualenv (if any) activated.
func environment(engineEnv []string, venv string) []string {
	if len(engineEnv) == 0 {
		engineEnv = os.Environ()
	}
	if venv == "" {
		return engineEnv
	}
	bin := filepath.Join(venv, "bin")
	out := make([]string, 0, len(engineEnv)+2)
	path := bin
	for _, kv := range engineEnv {
		key, value, _ := strings.Cut(kv, "=")
		switch key {
		case "PATH":
			path = bin + string(os.PathListSeparator) + value
		case "VIRTUAL_ENV", "PYTHONHOME":
			// Replaced, and unset, as `activate` does.
		default:
			out = append(out, kv)
		}
	}
	return append(out, "PATH="+path, "VIRTUAL_ENV="+venv)
}

// outputStreams sends a process's stdout and stderr as RunPlugin responses. exec copies each stream
// in its own goroutine and a gRPC stream must not be sent on concurrently, hence the lock.
type outputStreams struct {
	mu     sync.Mutex
	server pulumirpc.LanguageRuntime_RunPluginServer
}

func (s *outputStreams) writer(stderr bool) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		// exec reuses p after Write returns and a message must not change once sent: send a copy.
		chunk := append([]byte(nil), p...)
		response := &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: chunk}}
		if stderr {
			response = &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: chunk}}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.server.Send(response); err != nil {
			return 0, err
		}
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
