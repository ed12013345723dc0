//! Build runner: `cargo xtask test | train | bench | fixtures | kernels`.

fn main() {
    println!("xtask: under construction");
}
