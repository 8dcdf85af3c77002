fn main() {
    println!("srl");
}
