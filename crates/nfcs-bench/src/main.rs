//! `nfcs-bench`: the NFCS benchmark suite on the command line.
//!
//! Exit status: 0 when every target holds, 2 when a target fails or a regression against the
//! baseline is found, 1 on an error (a bad configuration, an unreadable baseline, ...).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use nfcs_bench::components::Component;
use nfcs_bench::components::load::{LoadOptions, ModelChoice};
use nfcs_bench::progress::Progress;
use nfcs_bench::report::{BenchmarkReport, Profile};
use nfcs_bench::suite::{NFCSBenchmarkSuite, SuiteOptions};
use nfcs_bench::{BenchError, BenchmarkConfig, Scenario};

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const AFTER_HELP: &str = "\
Exit status: 0 when every target holds, 2 when a target fails or a regression against the
baseline is found, 1 on an error.

Every run writes report.json (versioned, with the machine, the configuration and the commit),
report.md and report.html (self-contained, with plots) into --out.";

/// The NFCS benchmark suite: measures an NFCS deployment (its caches, the mathematical
/// kernels, the policy cache, the semantic cache, the coordination loop) against the NFCS
/// specification's targets.
#[derive(Debug, Parser)]
#[command(name = "nfcs-bench", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the suite (every component, or those given with --component) and prints the
    /// table of targets.
    #[command(after_help = AFTER_HELP)]
    Run(RunArgs),
    /// Runs a load test: virtual users doing NFCS operations (cache get/set, semantic lookup,
    /// policy check, memoized CGL solve) with think times.
    #[command(after_help = AFTER_HELP)]
    Load(LoadArgs),
    /// Runs an NFCS node: the service API over HTTP (cache, semantic cache, policy checks,
    /// memoized CGL solves), /metrics for Prometheus, a live dashboard at /dashboard, with
    /// the coordination loop running continuously. Stops cleanly on SIGTERM or Ctrl-C.
    #[cfg(feature = "serve")]
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// The AutoPerformanceOptimizer: runs the suite, applies the spec's rules to the running
    /// system (grow the memory tier by its miss-ratio curve when its hit ratio is under 0.8,
    /// turn on the allocator's background purging when fragmentation is over 30 %, pick the
    /// CGL grid when the solver misses its FPS target), re-runs, and keeps only what helped.
    #[command(after_help = OPTIMIZE_HELP)]
    Optimize(OptimizeArgs),
    /// Prints the default configuration as TOML (a starting point for --config).
    DefaultConfig,
    /// One peer-comparison section of docs/benchmarks.md as Markdown, from what the benches of
    /// `cargo xtask compare` wrote (xtask runs this and reads its standard output).
    PeerTable(nfcs_bench::peers::PeerTableArgs),
}

#[cfg(feature = "serve")]
const SERVE_HELP: &str = "\
The node listens on loopback by default. Listening on any other address needs a bearer token
(at least 16 characters) in NFCS_BENCH_TOKEN or in the file [serve] token_file names; the
/v1 routes, /api/check and /api/optimize then require `Authorization: Bearer <token>`.

Routes: /v1/cache/{key} (GET, PUT, DELETE), /v1/cache/invalidate, /v1/semantic/store,
/v1/semantic/find_similar, /v1/policy/evaluate, /v1/cgl/solve, /api/check, /api/optimize; /metrics,
/api/summary, /api/history, /api/stream (server-sent events), /dashboard, /openapi.json,
/healthz.

Exit status: 0 after a clean shutdown (requests drained, the disk tier flushed), 1 on an
error (a bad configuration, an address in use, a missing token).";

#[cfg(feature = "serve")]
#[derive(Debug, Args)]
struct ServeArgs {
    /// The configuration (TOML): the system under test in [cache], the node in [serve] and
    /// [alerts], the coordination loop in [coordination].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The address to listen on (overrides [serve] listen; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Where relative paths of the cache configuration (the disk tier) are resolved.
    #[arg(long, value_name = "DIR", default_value = ".")]
    work_dir: PathBuf,
}

const OPTIMIZE_HELP: &str = "\
Prints each rule's proposal (or why it proposes nothing), what was applied and whether it was
kept, and writes optimization.json beside the reports in --out. With --dry-run nothing is
applied. The memory tier's curve is built during the run ([memory] miss_ratio_curves is turned
on for it).

Exit status: 0 when the optimizer ran (whether or not anything changed), 1 on an error.";

#[derive(Debug, Args)]
struct OptimizeArgs {
    /// A component to run (repeatable); all of them by default.
    #[arg(long = "component", value_name = "C", value_parser = parse_component)]
    components: Vec<Component>,
    /// Plan only: report what would change, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The most the memory tier may be given (`512MiB`, `2GB`); four times [cache.memory]
    /// max_size by default.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory_limit: Option<u64>,
    #[command(flatten)]
    common: CommonArgs,
}

fn parse_size(text: &str) -> Result<u64, String> {
    text.parse::<nfcs_performance::ByteSize>()
        .map(|size| size.bytes())
        .map_err(|error| error.to_string())
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// The benchmark configuration (TOML; every field optional, the spec's defaults
    /// otherwise; the system under test in its [cache] table).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the reports go.
    #[arg(long, value_name = "DIR", default_value = "nfcs-bench-report")]
    out: PathBuf,
    /// Where relative paths of the cache configuration (the disk tier) are resolved.
    #[arg(long, value_name = "DIR", default_value = ".")]
    work_dir: PathBuf,
    /// Shrinks every duration so the whole suite takes under a minute (targets unchanged).
    #[arg(long)]
    quick: bool,
    /// Compares with an earlier report.json and fails (exit status 2) on a regression beyond
    /// the noise measured in the runs.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// A component to run (repeatable); all of them by default.
    #[arg(long = "component", value_name = "C", value_parser = parse_component)]
    components: Vec<Component>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Model {
    /// Users that wait for each answer, then think (the configured think time).
    Closed,
    /// Requests arriving at a fixed rate (--rate), whatever the answers take.
    Open,
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// Virtual users (closed model) or the largest number of requests in flight (open model).
    #[arg(long, value_name = "N")]
    users: u32,
    /// Seconds of load, including the ramp-up.
    #[arg(long, value_name = "S")]
    duration: f64,
    /// One scenario alone, taking the whole duration (normal_load, peak_load, stress_test);
    /// all the configured scenarios, sharing it, by default.
    #[arg(long, value_name = "X", value_parser = parse_scenario)]
    scenario: Option<Scenario>,
    /// One run of this model for the whole duration: closed (users ramped over the
    /// configured ramp-up, at most a third of the run) or open (--rate arrivals per second,
    /// up to 10 x users in flight).
    #[arg(long, value_enum)]
    model: Option<Model>,
    /// Arrivals per second of the open model (default: twice users / think time).
    #[arg(long, value_name = "R")]
    rate: Option<f64>,
    /// One operation alone instead of the NFCS mix: cache_get, cache_set, policy_check,
    /// cgl_solve, semantic_lookup or no_op (a request that does nothing; over HTTP, /healthz).
    #[arg(long, value_name = "OP", value_parser = parse_operation)]
    operation: Option<nfcs_bench::load::Operation>,
    /// Served nodes to load over HTTP (`nfcs-bench serve`), comma-separated
    /// (http://host:port,...), instead of a system in this process. With two or more nodes
    /// sharing a Redis, cross-node freshness is checked too. The bearer token, when the nodes
    /// need one, comes from NFCS_BENCH_TOKEN.
    #[cfg(feature = "serve")]
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    target: Vec<String>,
    #[command(flatten)]
    common: CommonArgs,
}

fn parse_component(name: &str) -> Result<Component, String> {
    name.parse().map_err(|error: BenchError| error.to_string())
}

fn parse_operation(name: &str) -> Result<nfcs_bench::load::Operation, String> {
    use nfcs_bench::load::Operation;
    Ok(match name {
        "cache_get" => Operation::CacheGet,
        "cache_set" => Operation::CacheSet,
        "policy_check" => Operation::PolicyCheck,
        "cgl_solve" => Operation::CglSolve,
        "semantic_lookup" => Operation::SemanticLookup,
        "no_op" => Operation::NoOp,
        other => {
            return Err(format!(
                "unknown operation {other:?} (expected cache_get, cache_set, policy_check, \
                 cgl_solve, semantic_lookup or no_op)"
            ));
        }
    })
}

fn parse_scenario(name: &str) -> Result<Scenario, String> {
    name.parse().map_err(|error: BenchError| error.to_string())
}

fn main() -> ExitCode {
    // clap's own exit status for a usage error is 2, which here means "a target failed":
    // usage errors exit with 1 instead.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 1 } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(1)
        }
    }
}

/// Runs the command; `Ok(false)` when a target failed or a regression was found.
async fn run(cli: Cli) -> Result<bool, BenchError> {
    match cli.command {
        #[cfg(feature = "serve")]
        Command::Serve(args) => {
            let _ = tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_max_level(tracing::Level::INFO)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .try_init();
            let config = match &args.config {
                Some(path) => BenchmarkConfig::from_toml_file(path)?,
                None => BenchmarkConfig::default(),
            };
            nfcs_bench::serve::run(config, args.listen, &args.work_dir).await?;
            Ok(true)
        }
        Command::PeerTable(args) => {
            // Exactly the text on standard output: xtask captures it.
            print!("{}", nfcs_bench::peers::peer_table(&args)?);
            Ok(true)
        }
        Command::DefaultConfig => {
            print!("{}", BenchmarkConfig::default().to_toml_string());
            Ok(true)
        }
        Command::Run(args) => {
            let suite = build(&args.common).await?;
            let components = if args.components.is_empty() {
                Component::ALL.to_vec()
            } else {
                args.components
            };
            eprintln!(
                "nfcs-bench: {} profile, components {}; about {:.0} s",
                if args.common.quick { "quick" } else { "full" },
                components
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                estimate(&suite, &components),
            );
            let report = suite.run_components(&components).await?;
            finish(&report, &args.common)
        }
        Command::Optimize(args) => optimize(args).await,
        Command::Load(args) => {
            let options = LoadOptions {
                users: Some(args.users),
                duration: Some(args.duration),
                scenario: args.scenario,
                model: args.model.map(|model| match model {
                    Model::Closed => ModelChoice::Closed,
                    Model::Open => ModelChoice::Open,
                }),
                rate: args.rate,
                operation: args.operation,
            };
            #[cfg(feature = "serve")]
            if !args.target.is_empty() {
                return load_over_http(&args.common, &args.target, options).await;
            }
            let suite = build(&args.common).await?;
            let started = Instant::now();
            let component = suite.run_load(options).await?;
            let report = suite.assemble(vec![component], started);
            finish(&report, &args.common)
        }
    }
}

/// `nfcs-bench optimize`.
async fn optimize(args: OptimizeArgs) -> Result<bool, BenchError> {
    let suite = suite_from(&args.common, |config| {
        config.cache.memory.miss_ratio_curves = true;
    })
    .await?;
    let limit = args.memory_limit.unwrap_or_else(|| {
        suite
            .config()
            .cache
            .memory
            .max_size
            .bytes()
            .saturating_mul(4)
    });
    let components = if args.components.is_empty() {
        Component::ALL.to_vec()
    } else {
        args.components
    };
    let mut optimizer =
        nfcs_bench::optimizer::AutoPerformanceOptimizer::new(suite, limit).components(&components);
    let report = optimizer.optimize_system_performance(args.dry_run).await?;
    for proposal in &report.plan.proposals {
        println!("proposed [{}]: {}", proposal.rule, proposal.reason);
    }
    for (rule, why) in &report.plan.unchanged {
        println!("unchanged [{rule}]: {why}");
    }
    for outcome in &report.outcomes {
        println!(
            "{} [{}]: {} -> {}",
            if outcome.kept { "kept" } else { "reverted" },
            outcome.proposal.rule,
            outcome
                .before
                .map_or("-".to_owned(), |value| format!("{value:.4}")),
            outcome
                .after
                .map_or("-".to_owned(), |value| format!("{value:.4}")),
        );
    }
    if report.dry_run {
        println!("dry run: nothing applied");
    } else if report.plan.proposals.is_empty() {
        println!("nothing to optimize: nothing changed");
    }
    std::fs::create_dir_all(&args.common.out).map_err(|source| BenchError::Io {
        action: "could not create",
        path: args.common.out.clone(),
        source,
    })?;
    let path = args.common.out.join("optimization.json");
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    std::fs::write(&path, json).map_err(|source| BenchError::Io {
        action: "could not write",
        path: path.clone(),
        source,
    })?;
    eprintln!("optimization report: {}", path.display());
    Ok(true)
}

/// `nfcs-bench load --target URL,...`: the load test against served nodes.
#[cfg(feature = "serve")]
async fn load_over_http(
    common: &CommonArgs,
    targets: &[String],
    options: LoadOptions,
) -> Result<bool, BenchError> {
    // Nothing of the local system is measured: a memory tier alone, no model, no Redis.
    let suite = suite_from(common, |config| {
        config.cache.disk.enabled = false;
        config.cache.redis.enabled = false;
        config.cache.semantic.enabled = false;
        config.cache.cache_warming.enabled = false;
    })
    .await?;
    let token = std::env::var(nfcs_bench::config::TOKEN_ENV).ok();
    let started = Instant::now();
    eprintln!("nfcs-bench: load over HTTP against {}", targets.join(", "));
    let component =
        nfcs_bench::components::load::run_over_http(suite.context(), targets, token, options)
            .await?;
    let mut report = suite.assemble(vec![component], started);
    report.system = Some(nfcs_bench::system::SystemDescription {
        tiers: targets
            .iter()
            .map(|url| format!("{url}: a served node (its tiers are in the load notes)"))
            .collect(),
        semantic: false,
        constitution: "the target nodes' own".to_owned(),
        notes: Vec::new(),
    });
    finish(&report, common)
}

/// The suite of `common`'s configuration (changed by `adjust`), profile and progress bars.
async fn suite_from(
    common: &CommonArgs,
    adjust: impl FnOnce(&mut BenchmarkConfig),
) -> Result<NFCSBenchmarkSuite, BenchError> {
    let mut config = match &common.config {
        Some(path) => BenchmarkConfig::from_toml_file(path)?,
        None => BenchmarkConfig::default(),
    };
    adjust(&mut config);
    let progress = if common.no_progress {
        Progress::hidden()
    } else {
        Progress::stderr()
    };
    NFCSBenchmarkSuite::new(
        config,
        SuiteOptions {
            work_dir: common.work_dir.clone(),
            profile: if common.quick {
                Profile::Quick
            } else {
                Profile::Full
            },
            progress,
        },
    )
    .await
}

async fn build(common: &CommonArgs) -> Result<NFCSBenchmarkSuite, BenchError> {
    let suite = suite_from(common, |_| {}).await?;
    let system = suite.system().describe();
    for line in system.tiers {
        eprintln!("  {line}");
    }
    for note in system.notes {
        eprintln!("  note: {note}");
    }
    Ok(suite)
}

fn estimate(suite: &NFCSBenchmarkSuite, components: &[Component]) -> f64 {
    let config = &suite.context().config;
    let math = &config.mathematical_benchmarks;
    components
        .iter()
        .map(|component| match component {
            Component::Mathematical => {
                math.cgl_solver.test_duration * math.cgl_solver.grid_sizes.len() as f64
                    + math.kuramoto.test_duration * math.kuramoto.oscillator_counts.len() as f64
            }
            Component::Coordination => {
                config.coordination.test_duration + config.coordination.search_duration
            }
            Component::Load => config.load_testing.test_duration,
            _ => 5.0,
        })
        .sum()
}

/// Compares with the baseline, writes the reports, prints the table; whether all is well.
fn finish(report: &BenchmarkReport, common: &CommonArgs) -> Result<bool, BenchError> {
    let comparison = match &common.baseline {
        Some(path) => {
            let baseline = nfcs_bench::baseline::load_report(path)?;
            Some(nfcs_bench::baseline::compare(report, &baseline, path)?)
        }
        None => None,
    };
    let written = nfcs_bench::render::write_reports(&common.out, report, comparison.as_ref())?;
    println!("{}", nfcs_bench::render::terminal_table(report));
    if let Some(comparison) = &comparison {
        for row in comparison.regressions() {
            println!("REGRESSION {}: {} ({})", row.component, row.key, row.reason);
        }
    }
    eprintln!(
        "reports: {}, {}, {}",
        written.json.display(),
        written.markdown.display(),
        written.html.display()
    );
    let regressions = comparison
        .as_ref()
        .is_some_and(nfcs_bench::baseline::BaselineComparison::has_regressions);
    Ok(report.passed() && !regressions)
}
