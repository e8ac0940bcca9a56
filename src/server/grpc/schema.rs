//! SchemaService: ReadSchema and WriteSchema over the engine's schema calls. The other
//! methods (ReflectSchema, ComputablePermissions, DependentRelations, DiffSchema) answer
//! UNIMPLEMENTED through the generated default stubs.

use spicedb_rs_proto::authzed::api::v1 as pb;
use tonic::{Request, Response, Status};

use super::generated::schema_service_server::SchemaService;
use super::status::engine_status;
use super::stream::blocking;
use super::zedtoken;
use crate::server::AppState;

/// The SchemaService over the shared server state.
pub struct Schema {
    state: AppState,
}

impl Schema {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl SchemaService for Schema {
    async fn read_schema(
        &self,
        _request: Request<pb::ReadSchemaRequest>,
    ) -> Result<Response<pb::ReadSchemaResponse>, Status> {
        // SpiceDB answers NOT_FOUND before any schema was written.
        let (schema_text, revision) = self
            .state
            .engine()
            .schema_text()
            .ok_or_else(|| Status::not_found("no schema has been defined"))?;
        Ok(Response::new(pb::ReadSchemaResponse {
            schema_text,
            read_at: Some(zedtoken::encode(revision)),
        }))
    }

    async fn write_schema(
        &self,
        request: Request<pb::WriteSchemaRequest>,
    ) -> Result<Response<pb::WriteSchemaResponse>, Status> {
        let text = request.into_inner().schema;
        let engine = self.state.engine().clone();
        let revision = blocking(move || engine.write_schema(&text).map_err(engine_status)).await?;
        Ok(Response::new(pb::WriteSchemaResponse {
            written_at: Some(zedtoken::encode(revision)),
        }))
    }
}
