//! Median latency of MobileNetV3 (fused, inference) at 224×224, batch 1 and 8, on the default
//! backend, with the model loaded once and the input prepared once:
//!
//! `cargo run -p sightline-vision --example mobilenet_bench -- [small|large] [iterations]`
//!
//! Dependencies (Burn) are optimised even in the dev profile, so this measures the kernels.

use std::time::Instant;

use sightline_vision::backend::default_device;
use sightline_vision::burn::tensor::{Distribution, Tensor};
use sightline_vision::mobilenet::MobileNetV3Config;
use sightline_vision::weights::tensor_to_vec;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let variant = args.next().unwrap_or_else(|| "small".into());
    let iterations: usize = args.next().map_or(Ok(20), |s| s.parse())?;
    let config = match variant.as_str() {
        "small" => MobileNetV3Config::small(4),
        "large" => MobileNetV3Config::large(4),
        other => return Err(format!("unknown variant {other} (small or large)").into()),
    };
    let device = default_device();
    let model = config.init(&device).fuse();
    for batch in [1usize, 8] {
        let x = Tensor::<4>::random(
            [batch, 3, 224, 224],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        // warm-up: lazy parameter materialisation, allocator, thread pool
        for _ in 0..3 {
            tensor_to_vec(model.forward(x.clone()))?;
        }
        let mut times: Vec<f64> = (0..iterations)
            .map(|_| {
                let t = Instant::now();
                let out = tensor_to_vec(model.forward(x.clone()));
                let ms = t.elapsed().as_secs_f64() * 1e3;
                out.map(|_| ms)
            })
            .collect::<Result<_, _>>()?;
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "mobilenet_v3_{variant} @224 batch {batch}: median {median:.1} ms ({:.1} ms/image), min {:.1} ms, max {:.1} ms, {iterations} runs",
            median / batch as f64,
            times[0],
            times[times.len() - 1]
        );
    }
    Ok(())
}
