public import Wire

// Method ids: the high byte names the service, the low byte the method. Health is the same
// on every service. Keep this list and docs/PROTOCOL.md in step.

/// Answered by every service.
public enum HealthAPI {
    public static let check = Method<HealthRequest, HealthResponse>(id: 0x0001, name: "Health/Check")
}

/// Answered by every service: its audit log of admin calls (admin only).
public enum AuditAPI {
    public static let read = Method<AuditRequest, AuditResponse>(id: 0x0002, name: "Audit/Read")
}

public enum IngestAPI {
    public static let append = Method<AppendRequest, AppendResponse>(id: 0x0101, name: "Ingest/Append")
    public static let read = Method<ReadRequest, ReadResponse>(id: 0x0102, name: "Ingest/Read")
    public static let logInfo = Method<LogInfoRequest, LogInfoResponse>(id: 0x0103, name: "Ingest/LogInfo")
    public static let erase = Method<EraseRequest, EraseResponse>(id: 0x0104, name: "Ingest/Erase")
}

public enum FeatureAPI {
    public static let getProfile = Method<GetProfileRequest, GetProfileResponse>(id: 0x0201, name: "Feature/GetProfile")
    public static let getFeatures = Method<GetFeaturesRequest, GetFeaturesResponse>(id: 0x0202, name: "Feature/GetFeatures")
    public static let getItems = Method<GetItemsRequest, GetItemsResponse>(id: 0x0203, name: "Feature/GetItems")
    public static let topItems = Method<TopItemsRequest, TopItemsResponse>(id: 0x0204, name: "Feature/TopItems")
    public static let segmentMembers = Method<SegmentMembersRequest, SegmentMembersResponse>(id: 0x0205, name: "Feature/SegmentMembers")
    public static let exportTraining = Method<ExportTrainingRequest, ExportTrainingResponse>(id: 0x0206, name: "Feature/ExportTraining")
    public static let deleteUser = Method<DeleteUserRequest, DeleteUserResponse>(id: 0x0207, name: "Feature/DeleteUser")
    public static let requestFeatures = Method<RequestFeaturesRequest, RequestFeaturesResponse>(id: 0x0208, name: "Feature/RequestFeatures")
    public static let ownership = Method<OwnershipRequest, OwnershipResponse>(id: 0x0209, name: "Feature/Ownership")
    public static let defineAudience = Method<DefineAudienceRequest, DefineAudienceResponse>(id: 0x020A, name: "Feature/DefineAudience")
    public static let listAudiences = Method<ListAudiencesRequest, ListAudiencesResponse>(id: 0x020B, name: "Feature/ListAudiences")
    public static let audienceMembers = Method<AudienceMembersRequest, AudienceMembersResponse>(
        id: 0x020C, name: "Feature/AudienceMembers")
    public static let audienceOverlap = Method<AudienceOverlapRequest, AudienceOverlapResponse>(
        id: 0x020D, name: "Feature/AudienceOverlap")
}

public enum ModelAPI {
    public static let train = Method<TrainRequest, TrainResponse>(id: 0x0301, name: "Model/Train")
    public static let jobStatus = Method<JobStatusRequest, JobStatusResponse>(id: 0x0302, name: "Model/JobStatus")
    public static let listModels = Method<ListModelsRequest, ListModelsResponse>(id: 0x0303, name: "Model/ListModels")
    public static let getModel = Method<GetModelRequest, GetModelResponse>(id: 0x0304, name: "Model/GetModel")
    public static let publish = Method<PublishModelRequest, PublishModelResponse>(id: 0x0305, name: "Model/Publish")
    public static let cancelJob = Method<CancelJobRequest, JobStatusResponse>(id: 0x0306, name: "Model/CancelJob")
    public static let listJobs = Method<ListJobsRequest, ListJobsResponse>(id: 0x0307, name: "Model/ListJobs")
    public static let rollback = Method<RollbackModelRequest, PublishModelResponse>(id: 0x0308, name: "Model/Rollback")
    public static let watchModels = Method<WatchModelsRequest, WatchModelsResponse>(id: 0x0309, name: "Model/WatchModels")
    public static let getReport = Method<GetReportRequest, EvaluationReport>(id: 0x030A, name: "Model/GetReport")
    public static let defineCampaign = Method<DefineCampaignRequest, DefineCampaignResponse>(id: 0x030B, name: "Model/DefineCampaign")
    public static let listCampaigns = Method<ListCampaignsRequest, ListCampaignsResponse>(id: 0x030C, name: "Model/ListCampaigns")
    public static let launchCampaign = Method<LaunchCampaignRequest, LaunchCampaignResponse>(id: 0x030D, name: "Model/LaunchCampaign")
    public static let campaignReport = Method<CampaignReportRequest, CampaignReport>(id: 0x030E, name: "Model/CampaignReport")
}

public enum RiskAPI {
    public static let score = Method<ScoreRequest, ScoreResponse>(id: 0x0401, name: "Risk/Score")
    public static let queryDecisions = Method<QueryDecisionsRequest, QueryDecisionsResponse>(id: 0x0402, name: "Risk/QueryDecisions")
    public static let label = Method<LabelRequest, LabelResponse>(id: 0x0403, name: "Risk/Label")
    public static let validateRules = Method<RulesSource, ValidateRulesResponse>(id: 0x0404, name: "Risk/ValidateRules")
    public static let publishRules = Method<RulesSource, PublishRulesResponse>(id: 0x0405, name: "Risk/PublishRules")
    public static let getRules = Method<GetRulesRequest, GetRulesResponse>(id: 0x0406, name: "Risk/GetRules")
    public static let updateLists = Method<UpdateListsRequest, UpdateListsResponse>(id: 0x0407, name: "Risk/UpdateLists")
    public static let getLists = Method<GetListsRequest, GetListsResponse>(id: 0x0408, name: "Risk/GetLists")
    public static let backtest = Method<BacktestRequest, BacktestResponse>(id: 0x0409, name: "Risk/Backtest")
    public static let decisionStats = Method<DecisionStatsRequest, DecisionStatsResponse>(id: 0x040A, name: "Risk/DecisionStats")
    public static let queryCases = Method<QueryCasesRequest, QueryCasesResponse>(id: 0x040B, name: "Risk/QueryCases")
    public static let getCase = Method<GetCaseRequest, GetCaseResponse>(id: 0x040C, name: "Risk/GetCase")
    public static let updateCase = Method<UpdateCaseRequest, Case>(id: 0x040D, name: "Risk/UpdateCase")
    public static let takeNextCase = Method<TakeNextCaseRequest, TakeNextCaseResponse>(id: 0x040E, name: "Risk/TakeNextCase")
    public static let replay = Method<ReplayRequest, ReplayResponse>(id: 0x040F, name: "Risk/Replay")
}

public enum RecommendAPI {
    public static let recommend = Method<RecommendRequest, RecommendResponse>(id: 0x0501, name: "Recommend/Recommend")
    public static let similarItems = Method<SimilarItemsRequest, SimilarItemsResponse>(id: 0x0502, name: "Recommend/SimilarItems")
    public static let popular = Method<PopularRequest, PopularResponse>(id: 0x0503, name: "Recommend/Popular")
}
