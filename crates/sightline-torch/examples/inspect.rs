//! Prints what a checkpoint holds: `cargo run -p sightline-torch --example inspect -- FILE`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(path) = std::env::args().nth(1) else {
        return Err("usage: inspect <checkpoint>".into());
    };
    let ck = sightline_torch::load(&path)?;
    println!("kind: {:?}, {} tensors", ck.kind, ck.tensors.len());
    let m = &ck.meta;
    println!(
        "class {:?} task {:?} scale {:?} nc {:?} stride {:?}",
        m.model_class, m.task, m.scale, m.nc, m.stride
    );
    println!("names: {:?}", m.names);
    println!("info: {}", serde_json::Value::Object(m.info.clone()));
    if let Some(y) = &m.yaml {
        println!("yaml: {y}");
    }
    for (name, t) in &ck.tensors {
        println!("{name} {:?} {:?}", t.shape, t.dtype);
    }
    Ok(())
}
