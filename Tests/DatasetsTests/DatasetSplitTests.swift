import Datasets
import Testing

@Suite("Dataset splits")
struct DatasetSplitTests {
    /// Taobao rows: user, item, category, behaviour, unix seconds; deliberately not in time order.
    static let taobao: [Substring] = [
        "1,10,100,pv,500", "2,20,100,pv,100", "1,11,100,buy,300", "2,21,100,cart,900", "3,30,100,pv,200", "1,12,100,pv,700",
    ]

    @Test("by time: rows before the cut train, rows up to --until are held out, the rest are in neither")
    func byTime() {
        let split = DatasetSplit(.taobao, lines: Self.taobao, rule: .time(at: 400_000, until: 800_000))
        #expect(split.train == [1, 2, 4])
        #expect(split.test == [0, 5])
        #expect(split.dropped == 1)
    }

    @Test("by share: the first rows in time order train, whatever the file's order")
    func byShare() {
        let split = DatasetSplit(.taobao, lines: Self.taobao, rule: .share(0.5))
        #expect(split.train == [1, 2, 4])
        #expect(split.test == [0, 3, 5])
    }

    @Test("last of each user: the latest row in time order is held out; a user with one row keeps it")
    func lastOfUser() {
        let split = DatasetSplit(.taobao, lines: Self.taobao, rule: .lastOfUser)
        #expect(split.test == [3, 5])
        #expect(split.train == [0, 1, 2, 4])
    }

    @Test("by users: every row of a user lands on one side, the same side for the same seed, near the share")
    func byUsers() {
        let lines: [Substring] = (0..<2_000).map { "\($0 / 2 + 1),\($0),7,pv,\($0)" }
        let a = DatasetSplit(.taobao, lines: lines, rule: .users(share: 0.7, seed: 3))
        let b = DatasetSplit(.taobao, lines: lines, rule: .users(share: 0.7, seed: 3))
        #expect(a.train == b.train && a.test == b.test)
        #expect(a.train.count + a.test.count == lines.count)
        let trainUsers = Set(a.train.map { $0 / 2 }), testUsers = Set(a.test.map { $0 / 2 })
        #expect(trainUsers.isDisjoint(with: testUsers))
        #expect((650...750).contains(trainUsers.count))
        #expect(DatasetSplit(.taobao, lines: lines, rule: .users(share: 0.7, seed: 4)).train != a.train)
    }

    @Test("a header goes to both parts; an invoice's other lines go with its first")
    func headersAndInvoices() {
        let lines: [Substring] = [
            "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country",
            "536365,85123A,HEART,6,2011-08-30 08:26:00,2.55,17850.0,United Kingdom",
            "536365,71053,LANTERN,6,2011-08-30 08:26:00,3.39,17850.0,United Kingdom",
            "536366,22633,WARMER,6,2011-09-02 08:28:00,1.85,17850.0,United Kingdom",
            "536366,22632,WARMER RED,6,2011-09-02 08:28:00,1.85,17850.0,United Kingdom",
        ]
        let split = DatasetSplit(.onlineRetail, lines: lines, rule: .time(at: 1_314_835_200_000, until: nil))  // 2011-09-01
        #expect(split.shared == [0])
        #expect(split.train == [1, 2])
        #expect(split.test == [3, 4])
    }
}
