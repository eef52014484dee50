public import RPC
public import Uplift

extension LogConsumer {
    /// Folds the log's campaign events (and purchases, with `orders`) into `book`, every
    /// partition from the start, until cancelled.
    public func follow(_ book: CampaignBook, orders: Bool, failed: @escaping @Sendable (RPCError) -> Void) async throws {
        let partitions = try await partitions()
        book.start(partitions: partitions)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for p in 0..<partitions {
                group.addTask {
                    try await consume(partition: p, kinds: CampaignBook.kinds(orders: orders), offset: { book.offset(p) }, failed: failed) {
                        response, _ in
                        book.fold(response.events, partition: p, next: response.nextOffset)
                    }
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }
}
