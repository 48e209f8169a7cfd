//! The HTTP-stack ceiling for the benchmarks: a bare actix-web server that parses the same JSON
//! predict body we accept (`{"inputs": [numbers]}`) and echoes it back as `{"outputs": [..]}`,
//! with no router, queue, executor or metrics. `cargo run --release --example bare_echo -- PORT`
//! (listens on 127.0.0.1 only).

use actix_web::{web, App, HttpResponse, HttpServer};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Request {
    inputs: Vec<f32>,
}

#[derive(Serialize)]
struct Response {
    outputs: [Vec<f32>; 1],
}

async fn echo(body: web::Json<Request>) -> HttpResponse {
    HttpResponse::Ok().json(Response {
        outputs: [body.into_inner().inputs],
    })
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8001);
    HttpServer::new(|| {
        App::new()
            .app_data(web::JsonConfig::default().limit(8 << 20))
            .route("/v1/models/echo/predict", web::post().to(echo))
    })
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
