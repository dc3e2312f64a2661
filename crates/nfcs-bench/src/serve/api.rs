//! The NFCS service API (`/v1/...`): JSON over HTTP for cache get, set, delete and
//! invalidate_pattern, semantic store and find_similar, policy evaluation and the memoized CGL
//! solve; its typed errors; and the OpenAPI document generated from these types.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use nfcs_performance::cache_core::CacheError;
use nfcs_performance::policy_cache::PolicyContext;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::AppState;
use crate::error::BenchError;

/// The largest CGL grid the API solves (points per side): a 512 x 512 solve of
/// [`SOLVE_STEPS`](crate::system::SOLVE_STEPS) steps takes about 0.2 s on one core.
pub const MAX_API_GRID: usize = 512;

/// The semantic context used when a request names none.
pub const DEFAULT_CONTEXT: &str = "default";

/// A JSON error: what every 4xx and 5xx answer of the node carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `invalid_json`, `payload_too_large`, `unsupported_media_type`,
    /// `invalid_key`, `invalid_pattern`, `invalid_ttl`, `invalid_value`, `value_too_large`,
    /// `not_text`, `invalid_request`, `unauthorized`, `not_found`, `method_not_allowed`,
    /// `conflict`, `timeout`, `not_running`, `unavailable`, `internal`.
    pub error: String,
    /// What went wrong, in words.
    pub message: String,
    /// The request field at fault, when one is.
    pub field: Option<String>,
}

/// An error answer: a status and an [`ErrorBody`].
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The JSON body.
    pub body: ErrorBody,
}

impl ApiError {
    /// An error of `status` with `code` and `message`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: code.to_owned(),
                message: message.into(),
                field: None,
            },
        }
    }

    /// This error about request field `field`.
    #[must_use]
    pub fn field(mut self, field: &str) -> ApiError {
        self.body.field = Some(field.to_owned());
        self
    }

    /// 400 `invalid_request` about `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message).field(field)
    }

    /// 404 `not_found`.
    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    fn from_cache(error: CacheError) -> ApiError {
        match &error {
            CacheError::InvalidKey { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_key", error.to_string())
                    .field("key")
            }
            CacheError::InvalidPattern(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_pattern",
                error.to_string(),
            )
            .field("pattern"),
            CacheError::InvalidTtl { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_ttl", error.to_string())
                    .field("ttl_s")
            }
            CacheError::ValueTooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "value_too_large",
                error.to_string(),
            )
            .field("value"),
            CacheError::Unavailable { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                error.to_string(),
            ),
            _ => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                error.to_string(),
            ),
        }
    }
}

impl From<CacheError> for ApiError {
    fn from(error: CacheError) -> ApiError {
        ApiError::from_cache(error)
    }
}

impl From<BenchError> for ApiError {
    fn from(error: BenchError) -> ApiError {
        match error {
            BenchError::Cache(error) => ApiError::from_cache(error),
            BenchError::Kernel(error) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                error.to_string(),
            ),
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, error = %self.body.error, message = %self.body.message, "request failed");
        }
        (self.status, Json(self.body)).into_response()
    }
}

/// A JSON body whose rejections are [`ApiError`]s (400 for malformed JSON, 413 for a body
/// over `serve.max_body`, 415 without `Content-Type: application/json`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<ApiJson<T>, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    let status = rejection.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "invalid_json",
    };
    ApiError::new(status, code, rejection.body_text())
}

/// A path parameter whose rejections are [`ApiError`]s.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<ApiPath<T>, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_rejection(&rejection)),
        }
    }
}

fn path_rejection(rejection: &PathRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        rejection.body_text(),
    )
    .field("path")
}

/// A query string whose rejections are [`ApiError`]s.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<ApiQuery<T>, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

fn query_rejection(rejection: &QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        rejection.body_text(),
    )
    .field("query")
}

/// `GET /v1/cache/{key}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CacheGetResponse {
    /// The key.
    pub key: String,
    /// Whether a tier had it (a miss is not an error).
    pub found: bool,
    /// The value, when found.
    pub value: Option<String>,
}

/// `PUT /v1/cache/{key}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheSetRequest {
    /// The value: UTF-8 text, stored as its bytes.
    pub value: String,
    /// Seconds to live (the tiers' default TTL when absent), above 0 and at most 100 years.
    #[serde(default)]
    #[schema(exclusive_minimum = 0.0, maximum = 3_153_600_000.0)]
    pub ttl_s: Option<f64>,
}

/// The answer of a write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CacheSetResponse {
    /// The key.
    pub key: String,
    /// Always true: a write that fails is an error.
    pub stored: bool,
}

/// `DELETE /v1/cache/{key}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CacheDeleteResponse {
    /// The key.
    pub key: String,
    /// Whether a tier held it.
    pub deleted: bool,
}

/// `POST /v1/cache/invalidate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvalidateRequest {
    /// A glob pattern (`*`, `?`, `[...]`, `[^...]`, `\\` escapes), e.g. `cgl_*`: 1 to 1024
    /// characters, every class closed and not empty, no trailing `\\`.
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = r#"^(?:[^\[\\]|\\[\s\S]|\[(?:\^(?:\\[\s\S]|[^\]\\])+|(?:\\[\s\S]|[^\]\\^])(?:\\[\s\S]|[^\]\\])*)\])+$"#
    )]
    pub pattern: String,
}

/// The answer of an invalidation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InvalidateResponse {
    /// The pattern.
    pub pattern: String,
    /// Entries removed, summed over the tiers.
    pub removed: u64,
}

/// `POST /v1/semantic/store`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SemanticStoreRequest {
    /// The text the response is stored under (embedded with MiniLM): not blank, at most
    /// 4096 characters.
    #[schema(min_length = 1, max_length = 4096, pattern = "[^\\s\\u0085]")]
    pub text: String,
    /// The response to give for similar texts.
    pub response: String,
    /// The context (tenant); `default` when absent: 1 to 256 characters, no control
    /// characters.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    pub context: Option<String>,
}

/// The answer of a semantic store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SemanticStoreResponse {
    /// Always true: a store that fails is an error.
    pub stored: bool,
}

/// `POST /v1/semantic/find_similar`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SemanticFindRequest {
    /// The query text: not blank, at most 4096 characters.
    #[schema(min_length = 1, max_length = 4096, pattern = "[^\\s\\u0085]")]
    pub text: String,
    /// The least cosine similarity of a hit, -1 to 1.
    #[schema(minimum = -1.0, maximum = 1.0)]
    pub threshold: f32,
    /// The context (tenant); `default` when absent: 1 to 256 characters, no control
    /// characters.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    pub context: Option<String>,
}

/// A semantic hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SemanticHit {
    /// The stored response.
    pub response: String,
    /// Its cosine similarity to the query.
    pub similarity: f32,
    /// The text it was stored under.
    pub text: String,
}

/// The answer of a semantic lookup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SemanticFindResponse {
    /// The most similar entry at or above the threshold (`null` on a miss).
    pub hit: Option<SemanticHit>,
}

/// `POST /v1/policy/evaluate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyEvaluateRequest {
    /// The action type (`query`, `deploy_model`, ...): 1 to 1024 bytes.
    #[schema(min_length = 1, max_length = 256)]
    pub action: String,
    /// The context: a JSON object of numbers, strings, booleans, lists and objects.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub context: serde_json::Value,
}

/// `value` with every integral float that fits an `i64` made an integer (JSON Schema's
/// `integer` admits `2.0`; the policy engine has integers, no floats).
fn integral(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(number) if number.as_i64().is_none() && number.as_u64().is_none() => {
            match number.as_f64() {
                Some(float)
                    if float.fract() == 0.0
                        && (-9.223_372_036_854_775e18..9.223_372_036_854_775e18)
                            .contains(&float) =>
                {
                    Value::from(float as i64)
                }
                _ => Value::Number(number),
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(integral).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(name, value)| (name, integral(value)))
                .collect(),
        ),
        other => other,
    }
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// The answer of a policy evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyEvaluateResponse {
    /// Whether the action complies.
    pub allowed: bool,
    /// `allow` or `deny`.
    pub verdict: String,
    /// The determining policies.
    pub reasons: Vec<String>,
    /// Errors of policies that could not be evaluated.
    pub errors: Vec<String>,
    /// Whether the decision came from the policy cache.
    pub cache_hit: bool,
    /// Seconds the evaluation took.
    pub evaluation_time_s: f64,
    /// The context's complexity score.
    pub complexity: u64,
}

/// `POST /v1/cgl/solve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CglSolveRequest {
    /// Points per side, from 8 to 512 (an integer; `64.0` is read as 64).
    #[serde(deserialize_with = "integer")]
    #[schema(value_type = i64, minimum = 8, maximum = 512)]
    pub grid_size: u64,
    /// The seed of the initial noise, 0 to 2^63 - 1.
    #[serde(default, deserialize_with = "integer")]
    #[schema(value_type = i64, minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub seed: u64,
}

/// An integer from a JSON number written as an integer or as an integral float (JSON
/// Schema's `integer` admits `64.0`), 0 to 2^63 - 1.
fn integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    use serde::de::Error;
    let number = serde_json::Number::deserialize(deserializer)?;
    let value = match (number.as_u64(), number.as_f64()) {
        (Some(value), _) => Some(value),
        (None, Some(value))
            if value.fract() == 0.0 && (0.0..9.223_372_036_854_775e18).contains(&value) =>
        {
            Some(value as u64)
        }
        _ => None,
    };
    value
        .filter(|value| *value <= i64::MAX as u64)
        .ok_or_else(|| D::Error::custom(format!("{number} is not an integer from 0 to 2^63 - 1")))
}

/// The answer of a CGL solve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CglSolveResponse {
    /// The grid.
    pub grid_size: usize,
    /// The seed.
    pub seed: u64,
    /// Steps of the solve.
    pub steps: u64,
    /// The mean of `|A|^2` at the end.
    pub mean_intensity: f64,
    /// Whether the result came from the cache.
    pub cache_hit: bool,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// The query of `GET /api/history`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only the samples of the last this many seconds (all kept ones when absent).
    #[param(minimum = 0.0)]
    pub seconds: Option<f64>,
}

/// The longest key the API takes, in characters (so at most 4096 bytes, the cache's limit).
pub const MAX_API_KEY_CHARS: usize = 1024;

fn check_key(key: &str) -> Result<(), ApiError> {
    let characters = key.chars().count();
    if characters > MAX_API_KEY_CHARS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_key",
            format!("invalid key: {characters} characters; at most {MAX_API_KEY_CHARS}"),
        )
        .field("key"));
    }
    nfcs_performance::cache_core::validate_key(key).map_err(|problem| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_key",
            format!("invalid key: {problem}"),
        )
        .field("key")
    })
}

/// Reads a key through every tier.
#[utoipa::path(
    get, path = "/v1/cache/{key}", tag = "cache",
    params(("key" = String, Path, description = "The cache key: UTF-8, 1 to 4096 bytes", min_length = 1, max_length = 1024)),
    responses(
        (status = 200, description = "The value, or found = false on a miss", body = CacheGetResponse),
        (status = 400, description = "An invalid key", body = ErrorBody),
        (status = 401, description = "A token is configured and the request has none or another", body = ErrorBody),
        (status = 422, description = "The value is not UTF-8 text", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn cache_get(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<CacheGetResponse>, ApiError> {
    check_key(&key)?;
    let value = state.system.cache_get(&key).await?;
    let value = match value {
        None => None,
        Some(bytes) => Some(String::from_utf8(bytes.to_vec()).map_err(|_| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_text",
                "the value under this key is not UTF-8 text (another client wrote it as binary); \
                 this API reads and writes text values",
            )
        })?),
    };
    Ok(Json(CacheGetResponse {
        key,
        found: value.is_some(),
        value,
    }))
}

/// Writes a key through every tier.
#[utoipa::path(
    put, path = "/v1/cache/{key}", tag = "cache",
    params(("key" = String, Path, description = "The cache key: UTF-8, 1 to 4096 bytes", min_length = 1, max_length = 1024)),
    request_body = CacheSetRequest,
    responses(
        (status = 200, description = "Stored", body = CacheSetResponse),
        (status = 400, description = "An invalid key, TTL or body", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 413, description = "The body or the value is too large", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn cache_set(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
    ApiJson(request): ApiJson<CacheSetRequest>,
) -> Result<Json<CacheSetResponse>, ApiError> {
    check_key(&key)?;
    let ttl = match request.ttl_s {
        None => None,
        Some(seconds) => Some(
            Duration::try_from_secs_f64(seconds)
                .ok()
                .filter(|_| seconds > 0.0)
                // A TTL below a nanosecond is a nanosecond.
                .map(|ttl| ttl.max(Duration::from_nanos(1)))
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_ttl",
                        format!("ttl_s must be a number of seconds above 0, not {seconds}"),
                    )
                    .field("ttl_s")
                })?,
        ),
    };
    state
        .system
        .manager()
        .set_bytes(
            &key,
            nfcs_performance::cache_core::Bytes::from(request.value.into_bytes()),
            ttl,
        )
        .await?;
    Ok(Json(CacheSetResponse { key, stored: true }))
}

/// Deletes a key from every tier.
#[utoipa::path(
    delete, path = "/v1/cache/{key}", tag = "cache",
    params(("key" = String, Path, description = "The cache key: UTF-8, 1 to 4096 bytes", min_length = 1, max_length = 1024)),
    responses(
        (status = 200, description = "Deleted (or absent)", body = CacheDeleteResponse),
        (status = 400, description = "An invalid key", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn cache_delete(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<CacheDeleteResponse>, ApiError> {
    check_key(&key)?;
    let deleted = state.system.manager().delete(&key).await?;
    Ok(Json(CacheDeleteResponse { key, deleted }))
}

/// Removes every key matching a glob pattern from every tier.
#[utoipa::path(
    post, path = "/v1/cache/invalidate", tag = "cache",
    request_body = InvalidateRequest,
    responses(
        (status = 200, description = "Invalidated", body = InvalidateResponse),
        (status = 400, description = "An invalid pattern or body", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn cache_invalidate(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<InvalidateRequest>,
) -> Result<Json<InvalidateResponse>, ApiError> {
    if request.pattern.chars().count() > 1024 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_pattern",
            "the pattern is longer than 1024 characters",
        )
        .field("pattern"));
    }
    let removed = state
        .system
        .manager()
        .invalidate_pattern(&request.pattern)
        .await?;
    Ok(Json(InvalidateResponse {
        pattern: request.pattern,
        removed,
    }))
}

fn semantic_error(error: nfcs_performance::SemanticStoreError) -> ApiError {
    use nfcs_performance::SemanticStoreError;
    match error {
        SemanticStoreError::NotRunning { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_running",
            error.to_string(),
        ),
        SemanticStoreError::Semantic(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            error.to_string(),
        ),
        SemanticStoreError::Cancelled => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            error.to_string(),
        ),
        other => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            other.to_string(),
        ),
    }
}

fn context_name(context: Option<String>) -> Result<String, ApiError> {
    let context = context.unwrap_or_else(|| DEFAULT_CONTEXT.to_owned());
    if context.is_empty() || context.chars().count() > 256 || context.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(
            "context",
            "the context must be 1 to 256 bytes without control characters",
        ));
    }
    Ok(context)
}

/// The longest text the semantic endpoints embed, in characters.
pub const MAX_SEMANTIC_TEXT: usize = 4096;

fn check_text(field: &str, text: &str) -> Result<(), ApiError> {
    // Blank texts are refused; the schema says so with `[^\s\u0085]` (ECMAScript's white
    // space, and U+0085, which Rust counts as white space too).
    if text
        .chars()
        .all(|character| character.is_whitespace() || character == '\u{feff}')
    {
        return Err(ApiError::invalid(field, format!("{field} is blank")));
    }
    let characters = text.chars().count();
    if characters > MAX_SEMANTIC_TEXT {
        return Err(ApiError::invalid(
            field,
            format!("{field} is {characters} characters; at most {MAX_SEMANTIC_TEXT}"),
        ));
    }
    Ok(())
}

/// Stores a response under a text in the semantic cache.
#[utoipa::path(
    post, path = "/v1/semantic/store", tag = "semantic",
    request_body = SemanticStoreRequest,
    responses(
        (status = 200, description = "Stored", body = SemanticStoreResponse),
        (status = 400, description = "A blank or too long text, a bad context or body", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 503, description = "The semantic cache does not run on this node (no model)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn semantic_store(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<SemanticStoreRequest>,
) -> Result<Json<SemanticStoreResponse>, ApiError> {
    check_text("text", &request.text)?;
    let context = context_name(request.context)?;
    state
        .system
        .manager()
        .semantic()
        .store(&request.text, &request.response, &context)
        .await
        .map_err(semantic_error)?;
    Ok(Json(SemanticStoreResponse { stored: true }))
}

/// Finds the stored text most similar to a query.
#[utoipa::path(
    post, path = "/v1/semantic/find_similar", tag = "semantic",
    request_body = SemanticFindRequest,
    responses(
        (status = 200, description = "The hit, or hit = null on a miss", body = SemanticFindResponse),
        (status = 400, description = "A blank text, a threshold outside -1..1, a bad body", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 503, description = "The semantic cache does not run on this node (no model)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn semantic_find(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<SemanticFindRequest>,
) -> Result<Json<SemanticFindResponse>, ApiError> {
    check_text("text", &request.text)?;
    let context = context_name(request.context)?;
    let hit: Option<nfcs_performance::SemanticMatch<String>> = state
        .system
        .manager()
        .semantic()
        .find_similar(&request.text, request.threshold, &context)
        .await
        .map_err(semantic_error)?;
    Ok(Json(SemanticFindResponse {
        hit: hit.map(|hit| SemanticHit {
            response: hit.value,
            similarity: hit.similarity,
            text: hit.text,
        }),
    }))
}

/// Evaluates an action against the constitution (through the policy cache).
#[utoipa::path(
    post, path = "/v1/policy/evaluate", tag = "policy",
    request_body = PolicyEvaluateRequest,
    responses(
        (status = 200, description = "The decision", body = PolicyEvaluateResponse),
        (status = 400, description = "An invalid action or context", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn policy_evaluate(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<PolicyEvaluateRequest>,
) -> Result<Json<PolicyEvaluateResponse>, ApiError> {
    if request.action.chars().count() > 256 {
        return Err(ApiError::invalid(
            "action",
            "the action type is longer than 256 characters",
        ));
    }
    let context = PolicyContext::try_from(integral(request.context))
        .map_err(|error| ApiError::invalid("context", error.to_string()))?;
    let result = state
        .system
        .policy()
        .evaluate_compliance(&request.action, &context)
        .await
        .map_err(|error| {
            use nfcs_performance::policy_cache::{EvaluationError, PolicyCacheError};
            match error {
                PolicyCacheError::InvalidAction { .. } => {
                    ApiError::invalid("action", error.to_string())
                }
                PolicyCacheError::Context(_) => ApiError::invalid("context", error.to_string()),
                PolicyCacheError::Evaluation(EvaluationError::UnknownAction { .. }) => {
                    ApiError::invalid("action", error.to_string())
                }
                PolicyCacheError::Evaluation(
                    EvaluationError::ContextSchema { .. }
                    | EvaluationError::UnsupportedValue { .. },
                ) => ApiError::invalid("context", error.to_string()),
                other => ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    other.to_string(),
                ),
            }
        })?;
    state.system.recorder().record_constitutional_performance(
        result.evaluation_time,
        result.cache_hit,
        result.complexity as f64,
    );
    Ok(Json(PolicyEvaluateResponse {
        allowed: result.is_allowed(),
        verdict: match result.verdict() {
            nfcs_performance::policy_cache::Verdict::Allow => "allow",
            nfcs_performance::policy_cache::Verdict::Deny => "deny",
        }
        .to_owned(),
        reasons: result.reasons().to_vec(),
        errors: result.decision.errors.clone(),
        cache_hit: result.cache_hit,
        evaluation_time_s: result.evaluation_time.as_secs_f64(),
        complexity: result.complexity,
    }))
}

/// Solves the CGL equation (memoized through the cache: the first request of a grid and
/// seed computes, the others are served from the tiers).
#[utoipa::path(
    post, path = "/v1/cgl/solve", tag = "mathematics",
    request_body = CglSolveRequest,
    responses(
        (status = 200, description = "The solve's summary", body = CglSolveResponse),
        (status = 400, description = "A grid size the solver or the API refuses", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn cgl_solve(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CglSolveRequest>,
) -> Result<Json<CglSolveResponse>, ApiError> {
    let grid_size = usize::try_from(request.grid_size).unwrap_or(usize::MAX);
    if !(8..=MAX_API_GRID).contains(&grid_size) {
        return Err(ApiError::invalid(
            "grid_size",
            format!(
                "grid_size must be from 8 to {MAX_API_GRID}, not {}",
                request.grid_size
            ),
        ));
    }
    let started = std::time::Instant::now();
    let summary = state
        .system
        .solve_cgl_optimized(grid_size, request.seed)
        .await?;
    state.system.recorder().record_computation(
        if summary.cache_hit {
            "cgl_solve_cached"
        } else {
            "cgl_solve"
        },
        started.elapsed(),
        grid_size,
    );
    Ok(Json(CglSolveResponse {
        grid_size: summary.grid_size,
        seed: request.seed,
        steps: crate::system::SOLVE_STEPS,
        mean_intensity: summary.mean_intensity,
        cache_hit: summary.cache_hit,
    }))
}

/// Whether the node serves.
#[utoipa::path(
    get, path = "/healthz", tag = "node",
    responses((status = 200, description = "The node serves", body = Health))
)]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

/// The spec's performance summary.
#[utoipa::path(
    get, path = "/api/summary", tag = "node",
    responses((status = 200, description = "The summary of the last sample", body = super::dashboard::PerformanceSummary))
)]
pub async fn summary(State(state): State<AppState>) -> Json<super::dashboard::PerformanceSummary> {
    Json(state.dashboard.get_performance_summary())
}

/// The dashboard's samples.
#[utoipa::path(
    get, path = "/api/history", tag = "node",
    params(HistoryQuery),
    responses(
        (status = 200, description = "Samples, oldest first", body = super::dashboard::History),
        (status = 400, description = "A bad query", body = ErrorBody),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<super::dashboard::History>, ApiError> {
    let mut history = state.dashboard.history();
    if let Some(seconds) = query.seconds {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err(ApiError::invalid(
                "seconds",
                format!("seconds must be a number of seconds, not {seconds}"),
            ));
        }
        let since = super::dashboard::unix_now() - seconds;
        history.points.retain(|point| point.t >= since);
    }
    Ok(Json(history))
}

/// The OpenAPI document of the node (served at `/openapi.json`).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "NFCS node",
        description = "The NFCS performance layer as a service: the multi-tier cache, the semantic cache, the policy cache and the memoized CGL solver, with the node's performance summary. Served by `nfcs-bench serve`."
    ),
    paths(
        cache_get, cache_set, cache_delete, cache_invalidate, semantic_store, semantic_find,
        policy_evaluate, cgl_solve, healthz, summary, history
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerScheme),
    tags(
        (name = "cache", description = "The multi-tier cache (memory, disk, Redis)"),
        (name = "semantic", description = "The semantic cache (MiniLM embeddings)"),
        (name = "policy", description = "Constitutional checks through the policy cache"),
        (name = "mathematics", description = "Memoized solvers"),
        (name = "node", description = "The node itself"),
    )
)]
pub struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The answers every route of the service API may give besides its own: the node's limits
/// and the body extractor's rejections (status, description, only for routes with a body).
const COMMON_ERRORS: [(&str, &str, bool); 5] = [
    ("413", "The body is larger than serve.max_body", true),
    (
        "415",
        "The body is not Content-Type: application/json",
        true,
    ),
    (
        "422",
        "The body is JSON but not of the request's shape (a missing or unknown field, a wrong type)",
        true,
    ),
    ("400", "The body is not JSON, or a value is refused", true),
    (
        "503",
        "The request took longer than serve.request_timeout, or a tier it needs is unavailable",
        false,
    ),
];

/// The OpenAPI document of this node as JSON: the generated document with the answers every
/// `/v1` route may give added to each, and, when the node has no token (`token` false),
/// without the bearer requirement (its routes are open then).
///
/// `actions`, when the node knows its constitution's action types, become the `action`
/// field's enumeration. A policy context's values are described as what the policy engine
/// takes: integers, strings, booleans, lists and records of them.
pub fn openapi_json(token: bool, actions: Option<&[&str]>) -> String {
    let mut document = match serde_json::to_value(ApiDoc::openapi()) {
        Ok(document) => document,
        Err(error) => return format!("{{\"error\": \"{error}\"}}"),
    };
    if let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
    {
        let value = serde_json::json!({ "$ref": "#/components/schemas/ContextValue" });
        schemas.insert(
            "ContextValue".to_owned(),
            serde_json::json!({
                "description": "A value of a policy context: the policy engine has integers, strings, booleans, sets and records (no floats, no null).",
                "oneOf": [
                    { "type": "integer", "minimum": i64::MIN, "maximum": i64::MAX },
                    { "type": "string" },
                    { "type": "boolean" },
                    { "type": "array", "items": value },
                    { "type": "object", "additionalProperties": value },
                ]
            }),
        );
        if let Some(request) = schemas
            .get_mut("PolicyEvaluateRequest")
            .and_then(|schema| schema.get_mut("properties"))
            .and_then(serde_json::Value::as_object_mut)
        {
            if let Some(context) = request
                .get_mut("context")
                .and_then(serde_json::Value::as_object_mut)
            {
                context.insert("additionalProperties".to_owned(), value.clone());
            }
            if let Some(actions) = actions
                && let Some(action) = request
                    .get_mut("action")
                    .and_then(serde_json::Value::as_object_mut)
            {
                action.insert("enum".to_owned(), serde_json::json!(actions));
            }
        }
    }
    let error_body = serde_json::json!({
        "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } }
    });
    if let Some(paths) = document
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
    {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for operation in item.values_mut() {
                let Some(operation) = operation.as_object_mut() else {
                    continue;
                };
                let has_body = operation.contains_key("requestBody");
                if path.starts_with("/v1/")
                    && let Some(responses) = operation
                        .get_mut("responses")
                        .and_then(serde_json::Value::as_object_mut)
                {
                    for (status, description, needs_body) in COMMON_ERRORS {
                        if (has_body || !needs_body) && !responses.contains_key(status) {
                            responses.insert(
                                status.to_owned(),
                                serde_json::json!({
                                    "description": description,
                                    "content": error_body,
                                }),
                            );
                        }
                    }
                    if !token {
                        responses.remove("401");
                    }
                }
                if !token {
                    operation.remove("security");
                }
            }
        }
    }
    if !token
        && let Some(schemes) = document
            .pointer_mut("/components/securitySchemes")
            .and_then(serde_json::Value::as_object_mut)
    {
        schemes.remove("bearer");
    }
    serde_json::to_string_pretty(&document).unwrap_or_default()
}
