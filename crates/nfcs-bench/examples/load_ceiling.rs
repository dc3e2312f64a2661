//! The load engine's own ceiling: requests per second against a target that answers at once
//! ([`NoopTarget`]), on every core of this machine.
//!
//! - closed model: `users` users without think time, for `seconds` each;
//! - open model: constant arrival rates doubling from 125,000/s; a rate is sustained when
//!   no arrival is dropped, the responses keep up with the schedule (at least 99 % of the rate)
//!   and the p99 start lateness stays under 10 ms.
//!
//! ```text
//! cargo run --release -p nfcs-bench --example load_ceiling [seconds]
//! ```

use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use nfcs_bench::load::{
    ClosedModel, LoadPlan, Mix, Model, NoopTarget, OpenModel, Operation, Stage, ThinkTime, run,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: f64 = match std::env::args().nth(1) {
        Some(text) => text.parse()?,
        None => 3.0,
    };
    let duration = Duration::from_secs_f64(seconds);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("load engine ceiling against a no-op target, {cores} cores, {seconds} s per run");
    let hidden = ProgressBar::hidden();
    for users in [2, 16, 128, 1024] {
        let model = ClosedModel {
            stages: vec![Stage { duration, users }],
            think: ThinkTime::None,
        };
        let plan = LoadPlan::new(Model::Closed(model), Mix::single(Operation::NoOp));
        let result = run(Arc::new(NoopTarget), &plan, &hidden).await?;
        println!(
            "closed, {users:>5} users: {:>12.0} requests/s ({} requests, raw p99 {:.0} ns)",
            result.throughput(),
            result.requests,
            result.raw_summary().p99 * 1e9
        );
    }
    let mut rate = 125_000.0;
    let mut sustained = 0.0;
    while rate <= 16_000_000.0 {
        let mut model = OpenModel::constant(rate, duration);
        model.max_in_flight = 4096;
        model.drop_after = Duration::from_secs(1);
        let plan = LoadPlan::new(Model::Open(model), Mix::single(Operation::NoOp));
        let result = run(Arc::new(NoopTarget), &plan, &hidden).await?;
        let lateness = result.lateness_summary();
        let kept_up =
            result.dropped == 0 && result.throughput() >= 0.99 * rate && lateness.p99 < 0.010;
        println!(
            "open, {rate:>10.0}/s: {:>12.0} responses/s, dropped {}, late {}, lateness p99 {:.2} ms, corrected p99 {:.2} ms{}",
            result.throughput(),
            result.dropped,
            result.late,
            lateness.p99 * 1e3,
            result.corrected_summary().p99 * 1e3,
            if kept_up { "" } else { "  (not sustained)" }
        );
        if !kept_up {
            break;
        }
        sustained = rate;
        rate *= 2.0;
    }
    println!("open model: highest rate sustained {sustained:.0}/s");
    Ok(())
}
