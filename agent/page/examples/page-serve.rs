//! The built-in page server on its own, for tests and demos until
//! `nuvol agent --http` runs it: `page-serve ADDR CONTROL PASSWORD`.
//! The password is hashed at start like `option password_hash` would hold it.

use nuvol_page::PageConfig;
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, control, password] = args.as_slice() else {
        eprintln!("usage: page-serve ADDR CONTROL PASSWORD");
        std::process::exit(100);
    };
    let Ok(addr) = addr.parse() else {
        eprintln!("page-serve: {addr} is not ip:port");
        std::process::exit(100);
    };
    let mut page = PageConfig::new(Path::new(control), &std::env::temp_dir());
    page.password_hash = match nuvol_page::hash_password(password) {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!("page-serve: {e}");
            std::process::exit(111);
        }
    };
    println!("page on http://{addr}/");
    if let Err(e) = nuvol_page::serve(addr, page) {
        eprintln!("page-serve: {e}");
        std::process::exit(111);
    }
}
