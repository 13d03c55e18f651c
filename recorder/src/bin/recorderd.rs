fn main() { eprintln!("recorderd: not implemented yet"); std::process::exit(1) }
