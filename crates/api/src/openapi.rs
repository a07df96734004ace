//! OpenAPI schemas of the response envelope (feature `openapi`): what the
//! server's `#[utoipa::path]` responses name. The wire shape is
//! [`crate::Envelope`]; these types only describe its two cases.

use utoipa::ToSchema;
use utoipa::openapi::Object;
use utoipa::openapi::schema::{ObjectBuilder, Type};

fn literal(value: bool) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([value]))
        .build()
}

fn literal_true() -> Object {
    literal(true)
}

fn literal_false() -> Object {
    literal(false)
}

/// `{"success": true, "data": …}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Success<T> {
    #[schema(schema_with = literal_true)]
    success: bool,
    data: T,
}

/// `{"success": false, "error": "…"}`: every error, whatever its status.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Failure {
    #[schema(schema_with = literal_false)]
    success: bool,
    /// What went wrong, for people; never a secret.
    error: String,
}
