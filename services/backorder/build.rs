//! The contract's descriptors, so `dlq show` can decode a parked payload by its subject into readable JSON.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["backorder/v1/backorder.proto", "backorder/v1/api.proto"];
    let root = "../../proto";
    for file in files {
        println!("cargo:rerun-if-changed={root}/{file}");
    }
    let set = protox::Compiler::new([root])?
        .include_imports(true)
        .open_files(files)?
        .encode_file_descriptor_set();
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("backorder.bin");
    std::fs::write(out, set)?;
    Ok(())
}
